#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Reload time: SIGHUP to every shard on the new epoch, with a large shaping table.

Starts ternd (--threads N) on a policy whose tern.shaping table holds
--domains domains and --sources sources (generated into a module the policy
requires), sends --reloads SIGHUPs one after another, and reads ternd's own
figure from each `policy reload: epoch N loaded in X ms` line: the time from
taking the signal to the last shard running the new epoch (loading the files
into a fresh Lua state per shard, init, the revision, the swap). Prints the
median, p90 and max. Everything runs on 127.0.0.1 in a temporary directory.

    bench/reload.py [--threads 2] [--domains 1000] [--sources 200] [--reloads 30]
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

from ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POLICY = """
local shaping = require 'tern.shaping'
local data = require 'shaping_data'
local shape = shaping.new(data)
tern.on('init', function()
  tern.define_spool { path = '%(dir)s/spool' }
  tern.start_esmtp_listener { listen = '127.0.0.1:%(port)d', hostname = 'mta.test' }
end)
tern.on('get_egress_path_config', function(domain, source, site)
  return shape:path(domain, source, site)
end)
"""


def shaping_data(domains, sources):
    out = ["return {",
           "  defaults = { connection_limit = 10, max_message_rate = '300/min' },",
           "  providers = {",
           "    google = { mx_suffixes = { '.google.com' }, connection_limit = 15 },",
           "    microsoft = { mx_suffixes = { '.outlook.com' }, max_message_rate = '120/min' },",
           "  },",
           "  domains = {"]
    for i in range(domains):
        out.append(f"    ['domain{i:04d}.test'] = {{ connection_limit = {1 + i % 20}, "
                   f"max_message_rate = '{60 + i % 600}/min' }},")
    out += ["  },", "  sources = {"]
    for i in range(sources):
        out.append(f"    ['ip-{i:03d}'] = {{ max_message_rate = '{100 + i}/h' }},")
    out += ["  },", "}"]
    return "\n".join(out) + "\n"


def wait_for(path, pattern, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            found = re.findall(pattern, f.read())
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise RuntimeError(f"{pattern!r} x{count} not seen in {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--domains", type=int, default=1000)
    p.add_argument("--sources", type=int, default=200)
    p.add_argument("--reloads", type=int, default=30)
    p.add_argument("--build", default=os.environ.get("TERN_BUILD",
                                                     os.path.join(ROOT, "build", "rel")))
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="reload-") as work:
        with open(os.path.join(work, "shaping_data.lua"), "w") as f:
            f.write(shaping_data(a.domains, a.sources))
        policy = os.path.join(work, "policy.lua")
        with open(policy, "w") as f:
            f.write(POLICY % {"dir": work, "port": free_port()})
        log = os.path.join(work, "ternd.log")
        with open(log, "w") as err:
            proc = subprocess.Popen([os.path.join(a.build, "ternd"), "--policy", policy,
                                     "--threads", str(a.threads)], stderr=err, cwd=work)
        try:
            wait_for(log, r"ready:", 1)
            for i in range(a.reloads):
                proc.send_signal(signal.SIGHUP)
                wait_for(log, r"policy reload: epoch \d+ loaded", i + 1)
            ms = [float(x) for x in wait_for(log, r"loaded in ([0-9.]+) ms", a.reloads)]
        finally:
            proc.terminate()
            proc.wait(15)
    ms.sort()
    print(f"reload, {a.threads} shards, {a.domains} domains + {a.sources} sources: "
          f"median {statistics.median(ms):.1f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms, "
          f"max {ms[-1]:.1f} ms over {len(ms)} reloads")


if __name__ == "__main__":
    main()
