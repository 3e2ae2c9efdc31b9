# SPDX-License-Identifier: MIT
"""What the benchmarks read of a running process."""


def rss_kib(pid):
    """The process's resident set (VmRSS) in KiB, or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0
