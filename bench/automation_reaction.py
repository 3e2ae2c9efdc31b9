#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""How fast shaping automation moves traffic off a deferred source.

Each run starts a ternd with three sources in one pool (127.0.0.2..4) and a
`suspend` rule for 4.7.28, and a Python sink (tests/integration/sinks.py)
that answers `421 4.7.28` to 127.0.0.2 after 50 messages from it; 400
messages are injected over HTTP. The figure is the time from the sink's
first refusal to the last transaction 127.0.0.2 starts afterwards (the
in-flight ones on its other connections included). Prints p50 and max over
the runs.

    /usr/bin/python3 bench/automation_reaction.py [runs]
"""
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from conftest import Ternd, free_port  # noqa: E402
from sinks import PySink  # noqa: E402
from test_automation import ADDRS, inject, policy, wait_for  # noqa: E402


def one_run():
    api, smtp = free_port(), free_port()
    sink = PySink("127.0.0.1", smtp).start()
    count = {"n": 0}

    def provider(peer, rcpts):
        if peer != ADDRS["ip-a"]:
            return None
        count["n"] += 1
        return "421 4.7.28 unusual rate of unsolicited mail" if count["n"] > 50 else None
    sink.reply = provider
    with tempfile.TemporaryDirectory() as d:
        text = policy("{ regex = '4\\\\.7\\\\.28', action = 'suspend', duration = '1h' }")
        text = text.replace("{dir}", d).replace("{port}", str(api)).replace("{port2}", str(smtp))
        path = os.path.join(d, "policy.lua")
        open(path, "w").write(text)
        t = Ternd(d, path).start()
        try:
            inject(api, 400, "u")
            ok = wait_for(lambda: sum(len(m["rcpt_tos"]) for m in sink.messages) >= 400,
                          timeout=120)
            bounced = [r for r in t.records() if r["type"] == "Bounce"]
            assert ok and not bounced, "not every message delivered, or some bounced"
        finally:
            t.stop()
            sink.stop()
    first = min(a["time"] for a in sink.attempts if a["reply"])
    last = max(a["time"] for a in sink.attempts if a["peer"] == ADDRS["ip-a"])
    return last - first


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    got = []
    for i in range(runs):
        got.append(one_run())
        print(f"run {i + 1}: {got[-1] * 1000:.1f} ms", flush=True)
    print(f"p50 {statistics.median(got) * 1000:.1f} ms, max {max(got) * 1000:.1f} ms "
          f"over {runs} runs")


if __name__ == "__main__":
    main()
