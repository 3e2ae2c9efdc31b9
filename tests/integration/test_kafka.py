# SPDX-License-Identifier: MIT
"""tern.kafka from a running ternd: a reception hook sends to Kafka and waits for the broker's
acknowledgement, while a batch stuck on an unreachable broker never holds up other sessions of
its shard. Against librdkafka's mock cluster (inside ternd) always, and against a real broker
when one is installed (Debian packages none: set KAFKA_HOME to a Kafka distribution)."""
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import free_port, listener_policy, run_ternd
from sinks import send_one

HOOKS = """
local mock = tern.kafka.producer { topic = 'events', properties = { ['test.mock.num.brokers'] = '1' } }
local dead = tern.kafka.producer { brokers = '127.0.0.1:%(dead)d', topic = 'events', timeout = '2s' }
tern.on('smtp_server_message_received', function(msg)
  local p = msg:recipient():find('^slow') and dead or mock
  local ok, err = p:send({ { key = msg:recipient(), value = 'received ' .. msg:recipient() } })
  msg:set_meta('kafka', ok and 'acknowledged' or err)
end)
"""


def meta_of(t, rcpt):
    for r in t.records():
        if r["type"] == "Reception" and r["recipient"] == rcpt:
            return r["meta"].get("kafka")
    return None


def test_reception_hook_waits_for_kafka_without_blocking_its_shard(ternd, ports):
    t = ternd(listener_policy("", HOOKS % {"dead": free_port()}), threads=1)
    slow = {}

    def send_slow():
        began = time.monotonic()
        send_one(ports[0], "s@o.test", ["slow@x.test"], b"Subject: s\r\n\r\nx\r\n")
        slow["took"] = time.monotonic() - began

    th = threading.Thread(target=send_slow)
    th.start()
    time.sleep(0.3)
    began = time.monotonic()
    send_one(ports[0], "s@o.test", ["fast@x.test"], b"Subject: f\r\n\r\nx\r\n")
    fast = time.monotonic() - began
    th.join(30)
    # One shard: the fast session was served while the slow one's hook waited for its reports.
    assert fast < 1.5, fast
    assert slow["took"] >= 1.5, slow
    deadline = time.monotonic() + 10
    while meta_of(t, "slow@x.test") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert meta_of(t, "fast@x.test") == "acknowledged"
    assert "not acknowledged: Local: Message timed out" in meta_of(t, "slow@x.test")


def test_producer_settings_checked_at_load(tmp_path):
    """A producer made at the top of a policy passes --check (no client starts there); a bad
    librdkafka setting is an error naming file:line."""
    good = tmp_path / "good.lua"
    good.write_text(HOOKS % {"dead": 1})
    r = run_ternd("--check", "--policy", str(good))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.lua"
    bad.write_text("local p = tern.kafka.producer { brokers = 'h:1', topic = 't',\n"
                   "  properties = { acks = 'maybe' } }\n")
    r = run_ternd("--check", "--policy", str(bad))
    assert r.returncode == 1
    assert "bad.lua:1: tern.kafka.producer: kafka setting 'acks'" in r.stderr, r.stderr


def kafka_home():
    home = os.environ.get("KAFKA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "kafka-server-start.sh")):
        return home
    start = shutil.which("kafka-server-start.sh")
    return os.path.dirname(os.path.dirname(start)) if start else None


def start_broker(home, workdir, port, controller):
    """A single KRaft broker on loopback, in workdir; returns its process."""
    props = os.path.join(workdir, "server.properties")
    with open(props, "w") as f:
        f.write("process.roles=broker,controller\nnode.id=1\n"
                f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n"
                "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
                f"log.dirs={workdir}/kafka-data\noffsets.topic.replication.factor=1\n"
                "auto.create.topics.enable=true\n")
    bin_dir = os.path.join(home, "bin")
    cluster = subprocess.run([os.path.join(bin_dir, "kafka-storage.sh"), "random-uuid"],
                             capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([os.path.join(bin_dir, "kafka-storage.sh"), "format", "-t", cluster, "-c",
                    props], capture_output=True, check=True)
    log = open(os.path.join(workdir, "kafka.log"), "wb")
    return subprocess.Popen([os.path.join(bin_dir, "kafka-server-start.sh"), props],
                            stdout=log, stderr=log)


def test_real_broker_gets_every_record(ternd, ports, tmp_path):
    home = kafka_home()
    if home is None:
        pytest.skip("no Kafka broker binary (kafka-server-start.sh on PATH or KAFKA_HOME): "
                    "Debian does not package Kafka; tern.kafka is tested against librdkafka's "
                    "mock cluster above and in tests/unit/test_kafka.c")
    port, controller = free_port(), free_port()
    broker = start_broker(home, str(tmp_path), port, controller)
    try:
        hooks = ("local p = tern.kafka.producer { brokers = '127.0.0.1:%d', topic = 'tern-test',"
                 " timeout = '60s' }\n"
                 "tern.on('smtp_server_message_received', function(msg)\n"
                 "  local ok, err = p:send({ { key = msg:recipient(), value = msg:recipient() } })\n"
                 "  if not ok then tern.reject(451, err) end\n"
                 "end)\n" % port)
        ternd(listener_policy("", hooks))
        rcpts = ["r%d@x.test" % i for i in range(20)]
        for r in rcpts:
            send_one(ports[0], "s@o.test", [r], b"Subject: k\r\n\r\nx\r\n")
        out = subprocess.run([os.path.join(home, "bin", "kafka-console-consumer.sh"),
                              "--bootstrap-server", "127.0.0.1:%d" % port, "--topic", "tern-test",
                              "--from-beginning", "--max-messages", str(len(rcpts)),
                              "--timeout-ms", "30000"], capture_output=True, text=True,
                             timeout=90).stdout.split()
        assert sorted(out) == sorted(rcpts)
    finally:
        broker.terminate()
        broker.wait(30)
