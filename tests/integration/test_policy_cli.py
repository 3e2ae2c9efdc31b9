# SPDX-License-Identifier: MIT
"""`tern policy check` and `tern policy test`, as a policy repository's CI runs
them: offline, exit status 0/1, failures named by file:line."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, run_tern

POLICY = """\
local limits = require 'limits'
tern.on('init', function()
  tern.define_spool { path = '/nonexistent/spool' }
  tern.start_esmtp_listener { listen = '127.0.0.1:1', hostname = 'mx.test' }
end)
tern.on('smtp_server_message_received', function(msg)
  if msg:from_domain() == 'blocked.test' then tern.reject(550, '5.7.1 sender blocked') end
  msg:set_meta('tenant', msg:get_header('X-Tenant') or 'default')
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return tern.make_egress_path(limits[site] or limits.default)
end)
"""

LIMITS = """\
return {
  ['gmail-smtp-in.l.google.com'] = { connection_limit = 15, max_message_rate = '120/min' },
  default = { connection_limit = 2, mail_from_timeout = '30s', rcpt_to_timeout = '20s',
              enable_tls = 'Opportunistic' },
}
"""

TEST = """\
local t = require 'tern.testing'
local p = t.policy()
t.dns { ['gmail.com'] = { mx = { 'gmail-smtp-in.l.google.com' } } }

t.test('gmail gets 15 connections', function()
  local c = p:fire('get_egress_path_config', 'gmail.com', 'ip-1', t.site('gmail.com'))
  t.eq(c.connection_limit, 15, 'connection_limit')
end)

t.test('a Kumo path table loads unchanged', function()
  local c = p:fire('get_egress_path_config', 'example.net', 'ip-1', 'mx.example.net')
  t.eq(c.mail_timeout, 30, 'mail_from_timeout')
  t.eq(c.rcpt_timeout, 20, 'rcpt_to_timeout')
  t.eq(c.enable_tls, 'opportunistic', 'enable_tls in any case')
end)

t.test('a blocked sender is rejected, others get a tenant', function()
  t.rejects(function()
    p:fire('smtp_server_message_received', t.message { from = 'a@blocked.test', to = 'b@gmail.com' })
  end, 550, 'sender blocked')
  local msg = t.message { from = 'a@ok.test', to = 'b@gmail.com', headers = { ['X-Tenant'] = 'acme' } }
  p:fire('smtp_server_message_received', msg)
  t.eq(msg:queue_name(), 'acme@gmail.com', 'queue')
end)

t.test('the connection object', function()
  local c = t.connection { peer = '10.1.2.3', listener = '0.0.0.0:25', tls = true, auth = 'u1' }
  t.eq(c:peer_address(), '10.1.2.3', 'peer')
  t.eq(c:auth_id(), 'u1', 'auth')
  t.eq(c:tls().version, 'TLSv1.3', 'tls')
end)
"""


def repo(tmp_path, test=TEST):
    (tmp_path / "policy.lua").write_text(POLICY)
    (tmp_path / "limits.lua").write_text(LIMITS)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "policy_test.lua").write_text(test)
    return tmp_path


def test_check_accepts_a_valid_policy(tmp_path):
    r = repo(tmp_path)
    out = run_tern("policy", "check", str(r / "policy.lua"), cwd=r)
    assert out.returncode == 0, out.stderr
    assert "policy OK" in out.stdout


def test_check_names_file_and_line_of_an_error(tmp_path):
    (tmp_path / "bad.lua").write_text(
        "tern.on('init', function()\n  tern.define_spool { pth = 'x' }\nend)\n")
    out = run_tern("policy", "check", "bad.lua", cwd=tmp_path)
    assert out.returncode == 1
    assert "bad.lua:2: unknown option 'pth' for tern.define_spool" in out.stderr


def test_check_reports_a_syntax_error_with_its_line(tmp_path):
    (tmp_path / "syntax.lua").write_text("tern.on('init', function()\n\n  local x = = 1\nend)\n")
    out = run_tern("policy", "check", "syntax.lua", cwd=tmp_path)
    assert out.returncode == 1
    assert "syntax.lua:3:" in out.stderr


def test_test_runs_the_default_tests_dir(tmp_path):
    r = repo(tmp_path)
    out = run_tern("policy", "test", "--policy", "policy.lua", cwd=r)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("ok - ")] == [
        "ok - gmail gets 15 connections", "ok - a Kumo path table loads unchanged",
        "ok - a blocked sender is rejected, others get a tenant", "ok - the connection object"]
    assert lines[-1] == "4 passed, 0 failed"


def test_a_broken_assertion_fails_with_file_and_line(tmp_path):
    broken = TEST.replace("t.eq(c.connection_limit, 15, 'connection_limit')",
                          "t.eq(c.connection_limit, 16, 'connection_limit')")
    r = repo(tmp_path, broken)
    out = run_tern("policy", "test", "--policy", "policy.lua", cwd=r)
    assert out.returncode == 1
    assert "not ok - gmail gets 15 connections" in out.stdout
    assert "#   tests/policy_test.lua:7: connection_limit: got 15, want 16" in out.stdout, out.stdout
    assert out.stdout.splitlines()[-1] == "3 passed, 1 failed"


def test_an_error_in_a_test_fails_that_test_only(tmp_path):
    broken = TEST.replace("t.eq(c:auth_id(), 'u1', 'auth')", "c:no_such_method()")
    r = repo(tmp_path, broken)
    out = run_tern("policy", "test", "--policy", "policy.lua", cwd=r)
    assert out.returncode == 1
    assert "not ok - the connection object" in out.stdout
    assert "#   error: tests/policy_test.lua:29: attempt to call method" in out.stdout, out.stdout
    assert out.stdout.splitlines()[-1] == "3 passed, 1 failed"


def test_a_policy_that_fails_to_load_fails_the_file(tmp_path):
    r = repo(tmp_path)
    (r / "limits.lua").write_text("return { default = { connection_limit = 0 } \n")
    out = run_tern("policy", "test", "--policy", "policy.lua", cwd=r)
    assert out.returncode == 1
    assert "limits.lua:" in out.stderr
    assert out.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_no_test_files_is_an_error(tmp_path):
    out = run_tern("policy", "test", str(tmp_path))
    assert out.returncode == 2
    assert "no *_test.lua files" in out.stderr


def test_the_examples_pass():
    out = run_tern("policy", "test", f"{ROOT}/policy-examples/tests")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^\d+ passed, 0 failed$", out.stdout, re.M)


def copy_policy_repo(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(f"{ROOT}/policy-examples/policy-repo", dst)
    return dst


def test_the_policy_repo_example_passes_check_and_test(tmp_path):
    r = copy_policy_repo(tmp_path)
    assert run_tern("policy", "check", "policy.lua", cwd=r).returncode == 0
    out = run_tern("policy", "test", "--policy", "policy.lua", cwd=r)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_doc_example_test_passes_against_the_policy_repo(tmp_path):
    doc = open(f"{ROOT}/docs/policy-review.md").read()
    block = re.search(r"```lua test\n(.*?)```", doc, re.S).group(1)
    r = copy_policy_repo(tmp_path)
    (r / "tests" / "doc_test.lua").write_text(block)
    out = run_tern("policy", "test", "tests/doc_test.lua", cwd=r)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == "2 passed, 0 failed"


def test_the_doc_explain_examples_match_the_policy_repo(tmp_path):
    # Regression: the automation rules shown in docs/policy-review.md must be what explain prints.
    doc = open(f"{ROOT}/docs/policy-review.md").read()
    blocks = re.findall(r"```text explain (\S+) (\S+)\n(.*?)```", doc, re.S)
    assert blocks
    r = copy_policy_repo(tmp_path)
    for domain, source, block in blocks:
        out = run_tern("policy", "explain", "--policy", "policy.lua", "--domain", domain,
                       "--source", source, cwd=r)
        assert out.returncode == 0, out.stderr
        want = block.rstrip("\n").split("\n")
        got = out.stdout.rstrip("\n").split("\n")
        assert got[-len(want):] == want, out.stdout


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_ci_script_runs_check_test_and_diff(tmp_path):
    if "unknown command 'diff'" in run_tern("policy", "diff").stderr:
        pytest.skip("this build has no tern policy diff")
    r = copy_policy_repo(tmp_path)
    git(r, "init", "-q", "-b", "main")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    limits = (r / "data" / "limits.lua").read_text()
    (r / "data" / "limits.lua").write_text(limits.replace("max_message_rate = '100/min'",
                                                          "max_message_rate = '50/min'"))
    env = dict(os.environ, TERN=f"{BUILD}/tern", BASE="main")
    out = subprocess.run(["./ci.sh"], cwd=r, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "yahoo" in out.stdout
