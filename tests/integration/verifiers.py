# SPDX-License-Identifier: MIT
"""DKIM verifiers that fetch keys through the loopback test DNS server.

dkimpy gets a dnsfunc that sends a real TXT query to the server; opendkim
gets a configuration whose resolver (libunbound) forwards every question to
it. Unbound treats 127.0.0.0/8 as off limits and answers the special-use
"test." zone itself unless told otherwise, hence the two server options; the
forward zone "." sends everything else to the test server too, so no query
can reach a real resolver.
"""
import os
import subprocess

from dnsserver import txt_lookup


def dkimpy_dnsfunc(address):
    """A dnsfunc for dkim.verify that asks the test DNS server at address."""
    def dnsfunc(name, timeout=5):
        return txt_lookup(address, name.decode(), timeout=timeout)
    return dnsfunc


def opendkim_conf(address, directory):
    """Write an opendkim verifier configuration for the server at address; return its path."""
    host, port = address.rsplit(":", 1)
    unbound = os.path.join(directory, "unbound.conf")
    with open(unbound, "w") as f:
        f.write("server:\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n"
                f"forward-zone:\n  name: \".\"\n  forward-addr: {host}@{port}\n")
    conf = os.path.join(directory, "opendkim.conf")
    with open(conf, "w") as f:
        f.write(f"Mode v\nSyslog no\nNameservers {host}@{port}\nResolverConfiguration {unbound}\n")
    return conf


def opendkim_verify(conf, message, directory, index=0):
    """opendkim -t on message: True when it reports the signature verified."""
    path = os.path.join(directory, f"opendkim-{index}.eml")
    with open(path, "wb") as f:
        f.write(message)
    out = subprocess.run(["opendkim", "-x", conf, "-t", path], capture_output=True, text=True,
                         timeout=30)
    text = out.stdout + out.stderr
    assert "verification" in text, text
    return " succeeded" in text
