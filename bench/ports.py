# SPDX-License-Identifier: MIT
"""Loopback ports for the benchmarks' servers."""
import socket

_given = set()


def free_port():
    """A free port on 127.0.0.1 never handed out before in this process.

    The kernel may give the same ephemeral port to two binds in a row once the
    first is closed, so a sink and a ternd picked one after the other could
    otherwise be told to listen on the same port.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port
