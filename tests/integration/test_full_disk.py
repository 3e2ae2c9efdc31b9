# SPDX-License-Identifier: MIT
"""Regression: on the first ENOSPC RocksDB asserted (`sync_without_flush_called_`)
and ternd died with SIGABRT instead of answering 452 4.3.1.

The spool lives on a 6 MiB tmpfs that a filler file helps to fill. With the
default floor (min_free_space = '5%') messages past it get 452 4.3.1 before
the disk is full; with no floor the disk fills and the failed write itself
answers 452 4.3.1. Either way ternd stays up, accepts again once the filler is
deleted, and every acknowledged message is in the spool after a restart.
"""
import json
import os
import smtplib
import subprocess
import time

import pytest

from conftest import run_tern, run_ternd
from sinks import port_free_on, queued_ids, read_records, ternd_sink

__all__ = ["ternd_sink"]  # fixture, used by name

BODY = b"Subject: fill\r\n\r\n" + (b"y" * 998 + b"\r\n") * 64  # about 64 KiB


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs, unmounted at the end; the test is skipped where mounting is not allowed."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def policy(floor, mx="127.0.0.1:9", retry="1h"):
    option = "" if floor is None else f", min_free_space = '{floor}'"
    return ("tern.on('init', function()\n"
            "  tern.define_spool { path = '{dir}/fs/spool'" + option + " }\n"
            "  tern.configure_local_logs { log_dir = '{dir}/log' }\n"
            "  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mx.test',\n"
            "                              relay_hosts = { '127.0.0.1' } }\n"
            "end)\n"
            # By default every message is held: nothing listens there, retry in an hour.
            "tern.on('get_queue_config', function()\n"
            f"  return tern.make_queue_config {{ mx_list = {{ '{mx}' }},"
            f" retry_interval = '{retry}' }}\n"
            "end)\n")


def send(c):
    """One message; its ids when accepted, else the (code, text) reply."""
    assert c.mail("s@origin.test")[0] == 250
    assert c.rcpt("r@dest.test")[0] == 250
    code, text = c.data(BODY)
    return (queued_ids(text), None) if code == 250 else (None, (code, text))


def fill_until_refused(c, limit=200):
    acked = set()
    for _ in range(limit):
        ids, refused = send(c)
        if refused:
            return acked, refused
        acked.update(ids)
    pytest.fail(f"{limit} messages of 64 KiB were accepted on a 6 MiB filesystem")


def accept_again(c, timeout=15.0):
    """Retry until a message is accepted (the writer looks at the disk once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        ids, refused = send(c)
        if ids:
            return set(ids)
        assert refused[0] == 452, refused
        assert time.monotonic() < deadline, f"still refused after the space came back: {refused}"
        time.sleep(0.3)


def spooled_ids(spool):
    r = run_tern("spool", "list", "--spool", spool)
    assert r.returncode == 0, r.stderr
    return {json.loads(line)["id"] for line in r.stdout.splitlines()}


@pytest.mark.parametrize("floor", [None, "0"], ids=["floor-5%", "no-floor"])
def test_full_disk_answers_452_and_recovers(ternd, ports, tmp_path, small_fs, floor):
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (4 << 20))
    t = ternd(policy(floor))
    with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as c:
        c.ehlo("client.test")
        acked, refused = fill_until_refused(c)
        assert refused[0] == 452 and refused[1].startswith(b"4.3.1 Insufficient system storage"), \
            refused
        assert len(acked) >= 5, f"only {len(acked)} messages fitted before the refusal"
        # Refused again, ternd alive, the session usable.
        assert send(c)[1][0] == 452
        assert c.noop()[0] == 250
        assert t.proc.poll() is None, t.stderr()[-3000:]

        os.unlink(filler)
        acked |= accept_again(c)
    assert t.proc.poll() is None
    expected = "reopened after a failed write" if floor == "0" else "free space below the floor"
    assert expected in t.stderr(), t.stderr()[-3000:]
    assert t.stop() == 0

    spool = str(tmp_path / "fs" / "spool")
    missing = acked - spooled_ids(spool)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
    again = ternd(policy(floor), start=False)
    again.stderr_path = str(tmp_path / "ternd-restarted.stderr")
    again.start()
    assert again.stop() == 0
    missing = acked - spooled_ids(spool)
    assert not missing, f"{len(missing)} acknowledged messages lost after a restart"


def test_delivery_goes_on_below_the_floor(ternd, ports, tmp_path, small_fs, ternd_sink):
    """Below the floor new messages wait, but those already spooled are delivered."""
    sink_port = port_free_on(["127.0.0.1"])
    (small_fs / "filler").write_bytes(b"\0" * (4 << 20))
    t = ternd(policy(None, mx=f"127.0.0.1:{sink_port}", retry="2s"))
    with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as c:
        c.ehlo("client.test")
        acked, refused = fill_until_refused(c)
        assert refused[0] == 452, refused
        ternd_sink("127.0.0.1", sink_port)
        deadline = time.monotonic() + 30
        while True:
            delivered = {r["id"] for r in read_records(t) if r["type"] == "Delivery"}
            if delivered >= acked or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert delivered >= acked, f"{len(acked - delivered)} of {len(acked)} not delivered"
        assert t.proc.poll() is None, t.stderr()[-3000:]
        # The floor kept every write off a full disk: no write failed.
        assert "until the spool is reopened" not in t.stderr(), t.stderr()[-3000:]
    assert t.stop() == 0


@pytest.mark.parametrize("value", ["100%", "-1%", "lots", "5 %"])
def test_bad_floor_is_a_policy_error_naming_file_and_line(tmp_path, value):
    path = tmp_path / "floor.lua"
    path.write_text("tern.on('init', function()\n"
                    f"  tern.define_spool {{ path = '{tmp_path}/spool', min_free_inodes = '{value}' }}\n"
                    "end)\n")
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 1, r.stdout
    assert f"floor.lua:2: tern.define_spool: option 'min_free_inodes': '{value}'" in r.stderr, \
        r.stderr


def test_sync_must_be_a_boolean(tmp_path):
    path = tmp_path / "sync.lua"
    path.write_text("tern.on('init', function()\n"
                    f"  tern.configure_local_logs {{ log_dir = '{tmp_path}/log', sync = 'yes' }}\n"
                    "end)\n")
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 1
    assert "sync.lua:2:" in r.stderr and "'sync'" in r.stderr, r.stderr
