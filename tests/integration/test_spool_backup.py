# SPDX-License-Identifier: MIT
"""Backing up the spool the way docs/operations.md says: stop ternd, copy the
spool directory, start it again. The copy is checked offline with `tern spool
list`, the original is then lost, and a ternd started on the restored copy
recovers every message that was queued. A spool of
several partitions (RocksDB instances) is copied as one directory.
"""
import shutil
import signal

from conftest import run_tern
from sinks import chunks, inject, wait_records, of_type

POLICY = """
tern.on('init', function()
  tern.define_spool { path = '{dir}/%s', partitions = 2 }
  tern.configure_local_logs { log_dir = '{dir}/log', max_segment_duration = '1s' }
  tern.start_esmtp_listener { listen = '127.0.0.1:{port}', hostname = 'mta.test',
                              relay_hosts = { '127.0.0.0/8' } }
end)
-- Nobody listens on {port9}: every message is tried once and waits an hour.
tern.on('get_queue_config', function()
  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:{port9}' } }
end)
"""


def spool_ids(path):
    import json
    r = run_tern("spool", "list", "--spool", path)
    assert r.returncode == 0, r.stderr
    return [json.loads(line)["id"] for line in r.stdout.splitlines() if line.strip()]


def test_stop_copy_restore(ternd, ports, tmp_path):
    t = ternd(POLICY % "spool")
    rcpts = [f"r{i}@dest.test" for i in range(300)]
    ids = inject(ports[0], chunks(rcpts, 50))
    assert len(set(ids)) == 300
    assert len(wait_records(t, of_type("TransientFailure"), 300)) == 300

    # Back up: stop, copy, start again.
    assert t.stop(signal.SIGTERM) == 0
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "spool", backup / "spool", symlinks=True)
    assert sorted(spool_ids(str(backup / "spool"))) == sorted(ids)

    # The spool is lost; the backup is copied back and a ternd starts on it.
    shutil.rmtree(tmp_path / "spool")
    shutil.copytree(backup / "spool", tmp_path / "restored", symlinks=True)
    t2 = ternd(POLICY % "restored")
    assert "recovered 300 messages" in t2.stderr()
