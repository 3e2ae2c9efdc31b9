# SPDX-License-Identifier: MIT
"""A spool that cannot write answers 452 4.3.1, keeps the session usable, and
ternd keeps running (regression: a failed synced write used to leave the
session with reading paused and freed its messages twice)."""
import resource
import signal
import smtplib
import subprocess

from conftest import Ternd, listener_policy


def small_files():
    # Files may not grow past 256 KiB: the spool's WAL soon hits it (EFBIG).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_full_disk_gives_452_and_the_session_goes_on(tmp_path, ports):
    policy = tmp_path / "p.lua"
    policy.write_text(listener_policy(hooks="""
tern.on('get_queue_config', function()
  return tern.make_queue_config { mx_list = { '127.0.0.1:9' }, retry_interval = '1h' }
end)
""").replace("{dir}", str(tmp_path)).replace("{port}", str(ports[0])))
    t = Ternd(str(tmp_path), str(policy))
    real_popen = subprocess.Popen
    subprocess.Popen = lambda *a, **kw: real_popen(*a, preexec_fn=small_files, **kw)
    try:
        t.start()
    finally:
        subprocess.Popen = real_popen
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 60
    codes = []
    with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as c:
        c.ehlo("client.test")
        for _ in range(12):
            assert c.mail("s@origin.test")[0] == 250
            assert c.rcpt("r@dest.test")[0] == 250
            code, text = c.data(body)
            codes.append((code, text))
            if code != 250:
                break
        assert codes[-1][0] == 452 and codes[-1][1].startswith(b"4.3.1"), codes[-1]
        # The same session still answers, and ternd is alive.
        assert c.noop()[0] == 250
    assert t.proc.poll() is None
    assert t.stop() == 0
