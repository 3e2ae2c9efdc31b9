# SPDX-License-Identifier: MIT
"""Helpers for the durability tests: injecting clients, spool checks, power loss.

`Injector` is one SMTP client sending two-recipient messages until it is told
to stop or the server goes away; it keeps every id acknowledged by a 250 and
remembers any failure so that the test can re-raise it. Only a broken
connection that happened after the kill (`kill_time`) is the kill's doing.

The power-loss simulation is tests/durability/powerloss.c, preloaded into
ternd (`powerloss_env`); once ternd is dead, `power_cut` replaces the spool
with the image that library kept: what a power cut would have left on disk.
"""
import json
import os
import shutil
import smtplib
import threading
import time

from conftest import BUILD, run_tern

POWERLOSS_LIB = os.path.join(BUILD, "tests", "powerloss.so")

# Keep received messages in the spool for the checks: they are routed to a loopback port
# where nothing listens, fail transiently and wait an hour for their retry.
HOLD = ("tern.on('get_queue_config', function()\n"
        "  return tern.make_queue_config { retry_interval = '1h',\n"
        "                                  mx_list = { '127.0.0.1:{port9}' } }\nend)\n")

QUEUED = b"2.0.0 OK queued as "


class Injector(threading.Thread):
    """One SMTP client sending two-recipient messages until stopped or disconnected."""

    def __init__(self, port, n, stop, limit=None, mark="", size=512):
        super().__init__(daemon=True)
        self.port, self.n, self.stop, self.limit, self.mark = port, n, stop, limit, mark
        self.filler = (b"x" * 78 + b"\r\n") * (size // 80)
        self.acked = {}  # id -> recipient
        self.tokens = {}  # id -> the message's token (with mark)
        self.replies = 0
        self.error = None
        self.error_time = None

    def run(self):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as c:
                c.ehlo("client.test")
                seq = 0
                while not self.stop.is_set() and (self.limit is None or seq < self.limit):
                    seq += 1
                    self.send_one(c, seq)
        except BaseException as e:  # judged by the test: see failure()
            self.error_time = time.monotonic()
            self.error = e

    def send_one(self, c, seq):
        token = f"{self.mark}c{self.n}-{seq}"
        rcpts = [f"{token}+{x}@example.net" for x in ("a", "b")]
        c.mail(f"sender{self.n}@client.test")
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, text
        body = (f"Subject: {token}\r\n\r\n{token}\r\n".encode() + self.filler +
                f"{token}\r\n".encode())
        code, text = c.data(body)
        assert code == 250, text
        assert text.startswith(QUEUED), text
        ids = text[len(QUEUED):].decode().split()
        assert len(ids) == 2 and ids[0] != ids[1], text
        self.acked.update(zip(ids, rcpts))
        self.tokens.update((i, token) for i in ids)
        self.replies += 1

    def failure(self, kill_time=None):
        """The client's error unless it is a connection broken by the kill at kill_time."""
        if self.error is None:
            return None
        broken = isinstance(self.error, (OSError, smtplib.SMTPServerDisconnected))
        if broken and kill_time is not None and self.error_time >= kill_time:
            return None
        return self.error


def run_injectors(port, clients, seconds=None, limit=None, mark="", kill=None, size=512):
    """Runs clients injectors, until kill() seconds after their first replies, or until each
    sent limit messages.

    Each message carries about size bytes of body. Returns (injectors, kill_time); raises any client's failure that the kill did not cause.
    """
    stop = threading.Event()
    inj = [Injector(port, n, stop, limit, mark, size) for n in range(clients)]
    for c in inj:
        c.start()
    kill_time = None
    if seconds is not None:  # else each client stops after limit messages
        wait_replies(inj, len(inj))
        time.sleep(seconds)
        kill_time = time.monotonic()
        kill()
        stop.set()
    for c in inj:
        c.join(30)
        assert not c.is_alive(), "a client hung"
    for c in inj:
        err = c.failure(kill_time)
        if err is not None:
            raise AssertionError(f"client {c.n} failed before the kill: {err!r}") from err
    return inj, kill_time


def wait_replies(injectors, n, timeout=30):
    """Until the clients have n replies between them: the kill's delay counts from there,
    so that a slow start on a loaded machine does not leave nothing acknowledged to check."""
    deadline = time.monotonic() + timeout
    while sum(c.replies for c in injectors) < n:
        failed = [c.error for c in injectors if c.error is not None]
        assert not failed, f"a client failed before the kill: {failed[0]!r}"
        assert time.monotonic() < deadline, f"fewer than {n} messages accepted in {timeout}s"
        time.sleep(0.01)


def acked_ids(injectors):
    acked = {}
    for c in injectors:
        acked.update(c.acked)
    assert sum(c.replies for c in injectors) * 2 == len(acked), "an id was given twice"
    return acked


def spool_list(spool):
    r = run_tern("spool", "list", "--spool", spool)
    assert r.returncode == 0, r.stderr
    return {m["id"]: m for m in map(json.loads, r.stdout.splitlines())}


def assert_all_present(acked, spooled):
    missing = sorted(set(acked) - set(spooled))
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged ids lost, e.g. {missing[:3]}"
    for i, rcpt in acked.items():
        assert spooled[i]["recipient"] == rcpt, (i, spooled[i])


# ---- power loss ---------------------------------------------------------------------------------

def powerloss_env(spool, state, trace=None, mark=None, reply=None):
    """Environment variables that preload the power-loss library for the tree at spool."""
    os.makedirs(spool, exist_ok=True)
    os.makedirs(state)
    env = {"LD_PRELOAD": POWERLOSS_LIB, "POWERLOSS_DIR": spool, "POWERLOSS_STATE": state,
           # Under ASan the preloaded library comes before the sanitizer's runtime.
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    for key, value in (("POWERLOSS_TRACE", trace), ("POWERLOSS_MARK", mark),
                       ("POWERLOSS_REPLY", reply)):
        if value is not None:
            env[key] = value
    return env


def read_listings(state):
    """Each directory's last complete listing in the journal: {inode: [(kind, inode, name)]}."""
    listings, current = {}, None
    with open(os.path.join(state, "journal")) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a record cut short: its sync never returned
            word, rest = line[:-1].split(" ", 1)
            if word == "dir":
                current = (int(rest), [])
            elif word == "end":
                assert current is not None and current[0] == int(rest), line
                listings[current[0]] = current[1]
                current = None
            else:
                n, name = rest.split(" ", 1)
                current[1].append((word, int(n), name))
    return listings


def power_cut(spool, state):
    """Replaces the tree at spool with what the disk would hold after a power cut."""
    listings = read_listings(state)
    shutil.rmtree(spool)
    os.mkdir(spool)
    build_dir(listings, state, 0, spool)  # the library numbers the tree's root 0


def build_dir(listings, state, n, path):
    for kind, child, name in listings.get(n, []):
        target = os.path.join(path, name)
        if kind == "d":
            os.mkdir(target)
            build_dir(listings, state, child, target)
            continue
        image = os.path.join(state, "data", str(child))
        if os.path.exists(image):
            shutil.copyfile(image, target)
        else:
            open(target, "wb").close()  # its name was synced, never its bytes


def read_trace(path):
    """The trace's events in order: (kind, seq, fields...)."""
    events = []
    with open(path) as f:
        for line in f:
            kind, seq, rest = line.rstrip("\n").split(" ", 2)
            events.append((kind, int(seq), rest))
    return events
