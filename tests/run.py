#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Run every test suite (unit, policy, integration, bench smoke, fuzz corpus replay)
and print one summary line.

Unit tests are cmocka binaries (TAP output), policy tests are Lua files run by
`ternd --script` (TAP output from lua/tern/testing.lua), integration tests are
pytest. The last line is `N passed, N failed`.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAP_OK = re.compile(r"^ok \d+")
TAP_NOT_OK = re.compile(r"^not ok \d+")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")


def count_tap(output):
    """(passed, failed) from TAP output; a missing plan, or a plan (the sum of several
    groups' plans) that differs from the test lines seen, counts as one more failure:
    a binary that stopped half-way must not pass on the lines it printed."""
    passed = failed = seen = 0
    planned = None
    for line in output.splitlines():
        plan = TAP_PLAN.match(line)
        if plan:
            planned = (planned or 0) + int(plan.group(1))
            continue
        if TAP_NOT_OK.match(line):
            seen += 1
            if "# SKIP" not in line:
                failed += 1
        elif TAP_OK.match(line):
            seen += 1
            if "# SKIP" not in line:
                passed += 1
    if planned is None or planned != seen:
        failed += 1
    return passed, failed


def run_tap(name, argv, env):
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\ntimed out\n", -1
    passed, failed = count_tap(out)
    if rc != 0 and failed == 0:
        failed = 1  # a crash or a failure outside any test still fails the suite
    status = "ok" if failed == 0 else "FAILED"
    print(f"{status:6} {name}: {passed} passed, {failed} failed", flush=True)
    if failed:
        print(out[-6000:], flush=True)
    return passed, failed


def run_unit(build, env):
    totals = [0, 0]
    tap_env = dict(env, CMOCKA_MESSAGE_OUTPUT="TAP")
    for binary in sorted(glob.glob(os.path.join(build, "tests", "test_*"))):
        if binary.endswith(".d"):
            continue
        p, f = run_tap("unit/" + os.path.basename(binary), [binary], tap_env)
        totals[0] += p
        totals[1] += f
    return totals


def run_policy(build, env):
    totals = [0, 0]
    ternd = os.path.join(build, "ternd")
    for script in sorted(glob.glob(os.path.join(ROOT, "tests", "policy", "*_test.lua"))):
        name = "policy/" + os.path.basename(script)
        p, f = run_tap(name, [ternd, "--threads", "2", "--script", script], env)
        totals[0] += p
        totals[1] += f
    return totals


def run_policy_examples(build, env):
    """policy-examples' tests through `tern policy test`, as a policy repository's CI runs it."""
    tern = os.path.join(build, "tern")
    runs = {"policy-examples/tests": [tern, "policy", "test", "policy-examples/tests"],
            "policy-examples/policy-repo": [tern, "policy", "test", "--policy",
                                            "policy-examples/policy-repo/policy.lua"]}
    totals = [0, 0]
    for name, argv in runs.items():
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        last = re.search(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
        passed, failed = (int(last.group(1)), int(last.group(2))) if last else (0, 1)
        if proc.returncode != 0 and failed == 0:
            failed = 1
        print(f"{'ok' if failed == 0 else 'FAILED':6} {name}: {passed} passed, {failed} failed",
              flush=True)
        if failed:
            print((proc.stdout + proc.stderr)[-6000:], flush=True)
        totals[0] += passed
        totals[1] += failed
    return totals


def run_integration(build, env, pytest_args):
    report = os.path.join(ROOT, build, "pytest.xml")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", os.path.join(ROOT, "tests", "integration")] + pytest_args
    if os.path.exists(report):
        os.unlink(report)  # a report left by an earlier run must not be read as this one's
    rc = subprocess.run(argv, cwd=ROOT, env=env).returncode
    if not os.path.exists(report):
        return [0, 1]
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests = int(suite.get("tests", 0))
    bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    # pytest's 5 is "no test collected": a filter or an import that hid every test fails too.
    if (rc != 0 or tests == 0) and bad == 0:
        bad = 1
    return [max(0, tests - bad - skipped), bad]


def run_bench_smoke(build, env):
    """The benchmark's smoke scenario, so the harness never rots."""
    argv = [sys.executable, os.path.join(ROOT, "bench", "run"), "smoke", "--build",
            os.path.join(ROOT, build)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    ok = proc.returncode == 0
    print(f"{'ok' if ok else 'FAILED':6} bench/smoke", flush=True)
    if not ok:
        print((proc.stdout + proc.stderr)[-4000:], flush=True)
    return [1, 0] if ok else [0, 1]


def python_sources():
    """Every Python file of the tree: *.py and scripts with a python3 shebang."""
    out = []
    for top in ("bench", "tests", "packaging", "policy-examples"):
        for root, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "seeds")]
            for name in files:
                path = os.path.join(root, name)
                if name.endswith(".py"):
                    out.append(path)
                    continue
                with open(path, "rb") as f:
                    first = f.readline()
                if first.startswith(b"#!") and b"python3" in first:
                    out.append(path)
    return sorted(out)


def run_lint(env):
    """pyflakes over the test and bench scripts: an undefined name in a code path
    no test takes (a benchmark's summary line) otherwise waits for its next run."""
    proc = subprocess.run([sys.executable, "-m", "pyflakes", *python_sources()], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    ok = proc.returncode == 0
    print(f"{'ok' if ok else 'FAILED':6} pyflakes", flush=True)
    if not ok:
        print((proc.stdout + proc.stderr)[-4000:], flush=True)
    return [1, 0] if ok else [0, 1]


def run_fuzz_replay(env):
    """Each fuzz target over its seed corpus, one run per file: a seed that once
    found a bug is a regression test. Targets are built by `make fuzz-build`."""
    totals = [0, 0]
    fuzz_env = dict(env, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    for src in sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "fuzz_*.c"))):
        name = os.path.basename(src)[:-2]
        binary = os.path.join(ROOT, "build", "fuzz", name)
        seeds = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "seeds", name, "*")))
        if not os.path.exists(binary) or not seeds:
            why = "not built (make fuzz-build)" if seeds else "no seeds"
            print(f"FAILED fuzz/{name}: {why}", flush=True)
            totals[1] += 1
            continue
        try:
            proc = subprocess.run([binary, *seeds], cwd=ROOT, env=fuzz_env, capture_output=True,
                                  text=True, errors="replace", timeout=300)
            out, rc = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired:
            out, rc = "timed out\n", -1
        passed = out.count("\nExecuted ") + out.startswith("Executed ")
        failed = 0 if rc == 0 else max(1, len(seeds) - passed)
        status = "ok" if failed == 0 else "FAILED"
        print(f"{status:6} fuzz/{name}: {passed} passed, {failed} failed", flush=True)
        if failed:
            print(out[-6000:], flush=True)
        totals[0] += passed
        totals[1] += failed
    return totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/rel")
    ap.add_argument("--only", choices=["lint", "unit", "policy", "policy-examples", "integration",
                                       "bench", "fuzz"])
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    # TERN_DNS_SERVERS: a policy without tern.dns.configure must not query the
    # system's resolvers; port 9 on loopback answers nothing, so lookups fail fast.
    env = dict(os.environ, TERN_BUILD=os.path.join(ROOT, args.build),
               TERN_ROOT=ROOT, TERN_DNS_SERVERS="127.0.0.1:9")
    suites = {"lint": lambda: run_lint(env),
              "unit": lambda: run_unit(args.build, env),
              "policy": lambda: run_policy(args.build, env),
              "policy-examples": lambda: run_policy_examples(args.build, env),
              "integration": lambda: run_integration(args.build, env, args.pytest_args),
              "bench": lambda: run_bench_smoke(args.build, env),
              "fuzz": lambda: run_fuzz_replay(env)}
    passed = failed = 0
    for name, fn in suites.items():
        if args.only and name != args.only:
            continue
        print(f"== {name}", flush=True)
        p, f = fn()
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
