# SPDX-License-Identifier: MIT
"""Regression: the README's five-minute tour did not work as written (no
records to `cat` while the segment was still open, a "quickstart" snippet that
was not quickstart.lua, esp.lua unrunnable for want of keys and DNS,
`tern dkim genkey --out keys/` failing on a missing directory, no word on
which commands need a terminal of their own).

This test reads the tour's shell blocks from README.md and runs them in order,
as a new user would, in a fresh directory shaped like the source tree: blocks
for terminals 1-3 start servers (a new command in a terminal first stops the
server running there, as Ctrl-C would); commands in terminal 4 must exit 0,
each retried for a while as a user would run a `grep` again.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD, ROOT

README = os.path.join(ROOT, "README.md")
TOUR_PORTS = [2525, 2526, 5353]
# A command of terminal 4 may need a delivery to happen first (or a retry a minute later).
RETRY_FOR = 90


def tour_blocks():
    """[(terminal, [command, ...])] from the tour's ```sh blocks."""
    text = open(README).read()
    tour = text[text.index("## A five-minute tour"):text.index("**Policy is code.**")]
    blocks = []
    for body in re.findall(r"```sh\n(.*?)```", tour, re.S):
        lines = body.replace("\\\n", " ").splitlines()
        m = re.match(r"# terminal (\d)", lines[0])
        assert m, "every tour block names its terminal: %r" % lines[0]
        cmds = [ln.strip() for ln in lines[1:] if ln.strip() and not ln.lstrip().startswith("#")]
        blocks.append((int(m.group(1)), cmds))
    return blocks


def make_run_command():
    """What `make run` starts once it has built: the Makefile's last line of the recipe."""
    text = open(os.path.join(ROOT, "Makefile")).read()
    recipe = text[text.index("\nrun:"):].split("\n\n")[0].splitlines()
    return recipe[-1].strip().replace("$$", "$")


class Server:
    def __init__(self, cmd, cwd, out_path):
        self.out_path = out_path
        self.out = open(out_path, "ab")
        self.proc = subprocess.Popen(cmd, shell=True, cwd=cwd, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"\bready\b", self.output()):
                return
            assert self.proc.poll() is None, self.output()
            time.sleep(0.05)
        raise AssertionError("not ready:\n" + self.output())

    def stop(self, sig=signal.SIGINT):
        """Ctrl-C: the signal goes to the terminal's whole process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


def run_until_ok(cmd, cwd):
    deadline = time.monotonic() + RETRY_FOR
    while True:
        r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=60)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r
        time.sleep(1)


def port_busy(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
    return False


@pytest.fixture
def tour_dir(tmp_path):
    """A fresh directory where ./ternd, ./tern and the tree's files are where the tour expects."""
    d = tmp_path / "tern"
    d.mkdir()
    os.symlink(os.path.join(BUILD, "ternd"), d / "ternd")
    os.symlink(os.path.join(BUILD, "tern"), d / "tern")
    for name in ("policy-examples", "tests", "lua"):
        os.symlink(os.path.join(ROOT, name), d / name)
    return str(d)


def test_readme_quickstart_snippet_is_quickstart():
    text = open(README).read()
    snippet = re.search(r"\*\*Policy is code\.\*\*.*?```lua\n(.*?)```", text, re.S).group(1)
    lines = open(os.path.join(ROOT, "policy-examples", "quickstart.lua")).read().splitlines()
    while lines[0].startswith("--"):
        lines.pop(0)
    assert snippet == "\n".join(lines) + "\n"


def test_readme_tour_works_as_written(tour_dir, tmp_path):
    busy = [p for p in TOUR_PORTS if port_busy(p)]
    if busy:
        pytest.skip("the tour's ports %s are in use on this machine" % busy)
    if subprocess.run(["which", "swaks"], capture_output=True).returncode != 0:
        pytest.skip("swaks is not installed (make run installs it)")
    assert make_run_command().startswith("./ternd --policy policy-examples/quickstart.lua")
    servers = {}
    try:
        for terminal, cmds in tour_blocks():
            for cmd in cmds:
                if cmd == "make run":
                    cmd = make_run_command()
                if terminal == 4:
                    r = run_until_ok(cmd, tour_dir)
                    assert r.returncode == 0, (cmd, r.stdout, r.stderr,
                                               {t: s.output() for t, s in servers.items()})
                    continue
                if terminal in servers:
                    servers[terminal].stop()
                out = str(tmp_path / ("terminal%d.%d.out" % (terminal, len(servers))))
                servers[terminal] = Server(cmd, tour_dir, out)
                servers[terminal].wait_ready()
    finally:
        for s in servers.values():
            s.stop()
