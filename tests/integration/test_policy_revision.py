# SPDX-License-Identifier: MIT
"""Every outcome record names the revision of the policy that decided it.

A policy kept in git is named by its commit (`git rev-parse --short=12 HEAD`),
with "-dirty" while a loaded file (here a module it requires) differs from the
commit, and by the new commit once the change is committed and ternd
restarted. A policy outside git is named "sha256:" + 12 hex digits of its
files' digest, stable across restarts and changed when a required module
changes. The ready line and `ternd --check` print the same value.
"""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import Ternd, listener_policy, run_ternd
from sinks import send_one, wait_records

GIT_ENV = {"GIT_AUTHOR_NAME": "Policy Author", "GIT_AUTHOR_EMAIL": "author@example.org",
           "GIT_COMMITTER_NAME": "Policy Author", "GIT_COMMITTER_EMAIL": "author@example.org",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}

HOOKS = """
local rules = require 'rules'
tern.on('get_queue_config', function()
  return tern.make_queue_config { mx_list = { '127.0.0.1:9' }, retry_interval = rules.retry }
end)
"""


# Spool and records live in <workdir>/state, outside the policy's directory.
STATE = "state"


def write_policy(policy_dir, workdir, port, retry="1h"):
    os.makedirs(policy_dir, exist_ok=True)
    path = os.path.join(policy_dir, "policy.lua")
    with open(path, "w") as f:
        f.write(listener_policy(hooks=HOOKS).replace("{dir}", os.path.join(workdir, STATE))
                .replace("{port}", str(port)))
    write_rules(policy_dir, retry)
    return path


def write_rules(policy_dir, retry):
    with open(os.path.join(policy_dir, "rules.lua"), "w") as f:
        f.write("return { retry = '%s' }\n" % retry)


def git(repo, *args):
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", "-C", repo, *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "--short=12", "HEAD")


class Runs:
    """Starts ternd on one policy file, one process at a time, each stopped by PID."""

    def __init__(self, workdir, policy, port):
        self.workdir, self.policy, self.port = workdir, policy, port
        self.current = None

    def revision(self):
        """Start ternd, send one message; the revision its ready line and its records name."""
        t = self.current = Ternd(self.workdir, self.policy).start()
        ready = re.search(r"ready: .* \(revision (\S+)\)", t.stderr()).group(1)
        ids = send_one(self.port, "s@origin.test", ["r@dest.test"], b"Subject: rev\r\n\r\nx\r\n")
        recs = wait_records(t, lambda r: r["id"] in ids and r["type"] == "Reception", 1,
                            log_dir=os.path.join(STATE, "log"))
        assert len(recs) == 1, recs
        assert t.stop() == 0
        return ready, recs[0]["policy_revision"]

    def stop(self):
        if self.current is not None and self.current.proc.poll() is None:
            self.current.kill9()


@pytest.fixture
def runs(tmp_path, ports):
    started = []

    def make(policy):
        r = Runs(str(tmp_path), policy, ports[0])
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


def check_revision(policy):
    out = run_ternd("--check", "--policy", policy)
    assert out.returncode == 0, out.stderr
    return re.search(r"policy OK \(revision (\S+)\)", out.stdout).group(1)


def test_git_commit_names_records_dirty_until_committed(tmp_path, ports, runs):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = str(tmp_path / "repo")
    policy = write_policy(repo, str(tmp_path), ports[0])
    git(repo, "init", "-q")
    first = commit(repo, "policy")
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    run = runs(policy)
    assert run.revision() == (first, first)
    assert check_revision(policy) == first

    write_rules(repo, "2h")
    assert run.revision() == (first + "-dirty", first + "-dirty")

    second = commit(repo, "retry after 2h")
    assert second != first
    assert run.revision() == (second, second)
    assert check_revision(policy) == second


def expected_hash(policy_dir, names):
    """The digest policy_revision.h defines: relative name, NUL, size, NUL, content, sorted."""
    h = hashlib.sha256()
    for name in sorted(names):
        with open(os.path.join(policy_dir, name), "rb") as f:
            data = f.read()
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return "sha256:" + h.hexdigest()[:12]


def test_policy_outside_git_is_named_by_its_files_hash(tmp_path, ports, runs):
    policy_dir = str(tmp_path / "policy")
    policy = write_policy(policy_dir, str(tmp_path), ports[0])
    # Not loaded, so not part of the revision.
    with open(os.path.join(policy_dir, "notes.txt"), "w") as f:
        f.write("unrelated\n")
    run = runs(policy)
    first = expected_hash(policy_dir, ["policy.lua", "rules.lua"])
    assert run.revision() == (first, first)
    assert run.revision() == (first, first)
    assert check_revision(policy) == first

    write_rules(policy_dir, "2h")
    second = expected_hash(policy_dir, ["policy.lua", "rules.lua"])
    assert second != first
    assert run.revision() == (second, second)
