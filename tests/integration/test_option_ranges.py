# SPDX-License-Identifier: MIT
"""Regression: out-of-range sizes and durations passed `ternd --check` and were
silently converted ('17179869184G' became 0, "no limit"); they are refused at
load with a policy error naming file:line."""
import os

import pytest

from conftest import listener_policy, run_ternd


@pytest.mark.parametrize("option", [
    "max_message_size = '17179869184G'",
    "max_message_size = 1e30",
    "max_message_size = -1",
    "client_timeout = '1e300d'",
    "data_timeout = 1e300",
    "client_timeout = -5",
])
def test_out_of_range_option_fails_check(tmp_path, ports, option):
    path = tmp_path / "range.lua"
    path.write_text(listener_policy(option).replace("{dir}", str(tmp_path))
                    .replace("{port}", str(ports[0])))
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 1, r.stdout
    key = option.split(" ")[0]
    assert f"{os.path.basename(path)}:4: tern.start_esmtp_listener: option '{key}'" in r.stderr
    assert "out of range" in r.stderr


def test_largest_size_and_duration_pass_check(tmp_path, ports):
    path = tmp_path / "max.lua"
    path.write_text(listener_policy("max_message_size = '8388608G', client_timeout = '36500d'")
                    .replace("{dir}", str(tmp_path)).replace("{port}", str(ports[0])))
    r = run_ternd("--check", "--policy", str(path))
    assert r.returncode == 0, r.stderr
