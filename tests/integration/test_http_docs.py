# SPDX-License-Identifier: MIT
"""Every curl example in docs/http-api.md, run against a real ternd: the reply
is the JSON shown after the example."""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT

DOC = os.path.join(ROOT, "docs", "http-api.md")

POLICY = ("tern.on('init', function()\n"
          "  tern.define_spool { path = '{dir}/spool' }\n"
          "  tern.start_http_listener { listen = '127.0.0.1:{port}' }\n"
          "end)\n"
          "tern.on('get_queue_config', function()\n"
          "  return tern.make_queue_config { retry_interval = '1h', mx_list = { '127.0.0.1:9' } }\n"
          "end)\n")


def examples():
    text = open(DOC).read()
    pairs = re.findall(r"```sh\n(curl .*?)```\s*```json\n(.*?)```", text, re.S)
    return [pytest.param(cmd, want, id=f"example{i + 1}") for i, (cmd, want) in enumerate(pairs)]


def test_doc_has_examples():
    assert len(examples()) >= 2


@pytest.mark.parametrize("cmd,want", examples())
def test_doc_example_answers_as_shown(ternd, ports, cmd, want):
    ternd(POLICY)
    cmd = cmd.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{ports[0]}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(want)
