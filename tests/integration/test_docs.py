# SPDX-License-Identifier: MIT
"""Every Lua example in docs/ is a complete policy that `ternd --check` accepts,
and every policy example in policy-examples/ checks too."""
import glob
import os
import re

import pytest

from conftest import ROOT, run_ternd

DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "policy-examples", "*.lua")))


def lua_blocks():
    for path in DOCS:
        text = open(path).read()
        for i, block in enumerate(re.findall(r"```lua\n(.*?)```", text, re.S)):
            yield pytest.param(block, id=f"{os.path.basename(path)}#{i + 1}")


@pytest.mark.parametrize("code", list(lua_blocks()))
def test_doc_example_checks(tmp_path, code):
    path = tmp_path / "example.lua"
    path.write_text(code)
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_policy_example_checks(tmp_path, path):
    r = run_ternd("--check", "--policy", path, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
