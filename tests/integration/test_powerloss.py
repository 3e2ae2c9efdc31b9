# SPDX-License-Identifier: MIT
"""Nothing acknowledged is lost, even to a power cut.

Regression: with the spool's synced write made unsynced, or the 250 sent
before the write completed, the whole suite still passed: a kill -9 keeps the
page cache, so it cannot find a missing fsync. Here ternd runs under the
power-loss library (tests/durability/powerloss.c), which keeps the image a
power cut would leave; after the kill -9 the spool is replaced by that image
and ternd restarts on it without the library. And a trace of system calls
shows that each 250 is sent only after the write carrying its message was
synced.

Regression: a partitioned spool's layout (the partitions file, the p<N>
directories) was never synced, so a power cut could forget every partition
and every message in it: odd runs use two partitions.
"""
import os
import random
import signal
import subprocess
import sys

import pytest

from conftest import listener_policy
from durability import (HOLD, QUEUED, acked_ids, assert_all_present, power_cut, powerloss_env,
                        read_trace, run_injectors, spool_list)

CLIENTS = 6
RUNS = 20


def start_under_powerloss(ternd, monkeypatch, policy, env):
    t = ternd(policy, start=False)
    with monkeypatch.context() as m:  # only ternd's environment, not the tests' later children
        for key, value in env.items():
            m.setenv(key, value)
        t.start(timeout=20)
    return t


# The model itself, on a small program whose every write is known.
MODEL_PROGRAM = r"""
import os, sys
d = sys.argv[1]
def put(name, data, sync):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    return fd
def sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
put("unsynced", b"lost", False)
put("synced", b"kept", True)
fd = put("grown", b"kept", True)
os.write(fd, b" lost")
fd = put("rewritten", b"kept", True)
os.ftruncate(fd, 0)
os.write(fd, b"lost")
os.ftruncate(fd, 10)
os.mkdir(os.path.join(d, "sub"))
put("sub/file", b"kept", True)
sync_dir(os.path.join(d, "sub"))
sync_dir(d)
put("late", b"data synced, name not", True)
os.rename(os.path.join(d, "old"), os.path.join(d, "renamed"))
os.unlink(os.path.join(d, "doomed"))
os.rename(os.path.join(d, "synced"), os.path.join(d, "synced2"))
os.unlink(os.path.join(d, "synced2"))
put("fresh", b"may reuse the inode number", True)
os.mkdir(os.path.join(d, "newdir"))
sync_dir(os.path.join(d, "newdir"))
os.kill(os.getpid(), 9)
"""


def test_powerloss_model(tmp_path):
    spool, state = str(tmp_path / "tree"), str(tmp_path / "state")
    os.makedirs(spool)
    for name, data in (("old", b"before start"), ("doomed", b"before start")):
        with open(os.path.join(spool, name), "wb") as f:
            f.write(data)
    env = dict(os.environ, **powerloss_env(spool, state))
    p = subprocess.run([sys.executable, "-c", MODEL_PROGRAM, spool], env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    power_cut(spool, state)

    def tree(path):
        out = {}
        for root, dirs, files in os.walk(path):
            rel = os.path.relpath(root, path)
            for d in dirs:
                out[os.path.normpath(os.path.join(rel, d))] = None
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    out[os.path.normpath(os.path.join(rel, name))] = f.read()
        return out

    assert tree(spool) == {
        "old": b"before start", "doomed": b"before start",  # rename, unlink never synced
        "unsynced": b"", "synced": b"kept", "grown": b"kept", "rewritten": b"kept",
        "sub": None, "sub/file": b"kept",
    }


def power_cut_run(ternd, ports, tmp_path, monkeypatch, seed, size, delay):
    """Inject, kill -9 after a random delay, cut the power, check the spool before and after
    a restart without the library. Odd seeds use a spool of two partitions."""
    spool, state = str(tmp_path / "spool"), str(tmp_path / "powerloss")
    policy = listener_policy("relay_hosts = { '127.0.0.1' }", HOLD)
    if seed % 2:
        policy = policy.replace("path = '{dir}/spool' }", "path = '{dir}/spool', partitions = 2 }")
        assert "partitions = 2" in policy
    t = start_under_powerloss(ternd, monkeypatch, policy, powerloss_env(spool, state))

    def kill():
        assert t.proc.poll() is None, f"ternd exited with {t.proc.returncode} before the kill"
        t.kill9()
        assert t.proc.returncode == -signal.SIGKILL, f"ternd exited with {t.proc.returncode}"

    clients, _ = run_injectors(ports[0], CLIENTS, random.Random(seed).uniform(*delay),
                               kill=kill, size=size)
    acked = acked_ids(clients)
    assert len(acked) >= 2 * CLIENTS, f"only {len(acked)} ids acknowledged before the kill"

    power_cut(spool, state)
    assert_all_present(acked, spool_list(spool))
    again = ternd(policy, start=False)
    again.stderr_path = str(tmp_path / "ternd-restarted.stderr")
    again.start()
    assert again.stop() == 0
    assert_all_present(acked, spool_list(spool))


@pytest.mark.parametrize("seed", range(RUNS))
def test_power_cut_loses_no_acknowledged_message(ternd, ports, tmp_path, monkeypatch, seed):
    power_cut_run(ternd, ports, tmp_path, monkeypatch, seed, 512, (0.2, 1.2))


@pytest.mark.parametrize("seed", range(4))
def test_power_cut_during_memtable_flushes(ternd, ports, tmp_path, monkeypatch, seed):
    """64 KiB messages fill a memtable every second or so: the cut also finds RocksDB
    switching write-ahead logs, writing tables and updating its manifest."""
    power_cut_run(ternd, ports, tmp_path, monkeypatch, seed, 65536, (1.0, 2.5))


def test_250_is_sent_after_the_synced_write_returns(ternd, ports, tmp_path, monkeypatch):
    spool, state, trace = (str(tmp_path / "spool"), str(tmp_path / "powerloss"),
                           str(tmp_path / "trace"))
    env = powerloss_env(spool, state, trace=trace, mark="plmark-", reply="250 " +
                        QUEUED.decode())
    policy = listener_policy("relay_hosts = { '127.0.0.1' }", HOLD)
    t = start_under_powerloss(ternd, monkeypatch, policy, env)
    clients, _ = run_injectors(ports[0], 4, limit=25, mark="plmark-")
    assert t.stop() == 0
    tokens = {}
    for c in clients:
        assert c.replies == 25
        tokens.update(c.tokens)

    events = read_trace(trace)
    syncs = [(seq, *map(int, rest.split())) for kind, seq, rest in events if kind == "S"]
    writes = {}
    for kind, seq, rest in events:
        if kind == "W":
            inode, end, token = rest.split()
            writes.setdefault(token, []).append((seq, int(inode), int(end)))
    replies = [(seq, rest[len("250 " + QUEUED.decode()):].split())
               for kind, seq, rest in events if kind == "R"]
    assert len(replies) == 100, f"{len(replies)} replies traced, 100 sent"
    for reply_seq, ids in replies:
        token = tokens[ids[0]][len("plmark-"):]  # the trace names what follows the mark
        before = [w for w in writes.get(token, []) if w[0] < reply_seq]
        assert before, f"the 250 for {token} was sent before any write carrying it"
        # The first write carrying the message is its spooling; later ones (an attempt's
        # unsynced update, which may come before the 250 is sent) need no sync.
        wseq, inode, end = before[0]
        assert any(wseq < sseq < reply_seq and sinode == inode and size >= end
                   for sseq, sinode, size in syncs), \
            f"the 250 for {token} was sent before the write carrying it was synced"
