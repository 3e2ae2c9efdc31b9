# SPDX-License-Identifier: MIT
"""The Debian package: `make deb` builds tern_VERSION_ARCH.deb with debhelper
from packaging/debian and lintian finds no error in it (the target fails
otherwise); it holds the daemon, the command, the Lua library, the policy as a
conffile, the systemd unit, the man pages and the example policies.

Installing it changes the machine (a system user, /etc/tern, /var/spool/tern),
so that part runs only with TERN_TEST_DPKG=1, on a machine without tern
installed: dpkg -i, `ternd --check` as user tern, dpkg -r keeps the spool.
"""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()
TOOLS = ["dpkg-buildpackage", "dh", "lintian", "scdoc"]


@pytest.fixture(scope="module")
def deb():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip("packaging tools not installed: %s" % " ".join(missing))
    r = subprocess.run(["make", "deb"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    debs = glob.glob(os.path.join(ROOT, "build", "deb", "tern_%s_*.deb" % VERSION))
    assert len(debs) == 1, debs
    return debs[0]


def test_changelog_version_is_the_tree_version():
    first = open(os.path.join(ROOT, "packaging", "debian", "changelog")).readline()
    assert first.startswith("tern (%s) " % VERSION)


def test_package_contents(deb):
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in ["/usr/sbin/ternd", "/usr/bin/tern", "/etc/tern/policy.lua",
                 "/usr/share/tern/lua/tern/shaping.lua", "/usr/share/tern/lua/tern/data/providers.lua",
                 "/lib/systemd/system/ternd.service", "/usr/share/man/man8/ternd.8.gz",
                 "/usr/share/man/man1/tern.1.gz", "/usr/share/man/man5/tern-policy.5.gz",
                 "/usr/share/doc/tern/examples/quickstart.lua",
                 "/usr/share/doc/tern/examples/esp.lua"]:
        assert path in files, path
    conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert conffiles == ["/etc/tern/policy.lua"]
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True,
                             text=True, check=True).stdout
    # Debian's libraries, nothing vendored.
    for lib in ["librocksdb", "libev4", "libc-ares2", "libssl3", "luajit"]:
        assert lib in depends, depends


def test_installed_policy_listens_on_localhost_with_system_paths(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path)], check=True)
    text = (tmp_path / "etc" / "tern" / "policy.lua").read_text()
    assert "'/var/spool/tern'" in text and "'/var/log/tern'" in text
    assert "listen = '127.0.0.1:" in text


@pytest.mark.skipif(os.environ.get("TERN_TEST_DPKG") != "1" or os.geteuid() != 0,
                    reason="installs the package: set TERN_TEST_DPKG=1 and run as root")
def test_install_check_remove_keeps_spool(deb):
    assert subprocess.run(["dpkg", "-s", "tern"], capture_output=True).returncode != 0, \
        "tern is already installed here"
    try:
        subprocess.run(["dpkg", "-i", deb], check=True, capture_output=True)
        r = subprocess.run(["su", "-s", "/bin/sh", "tern", "-c",
                            "cd / && ternd --check --policy /etc/tern/policy.lua"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert os.stat("/var/spool/tern").st_uid == int(
            subprocess.run(["id", "-u", "tern"], capture_output=True, text=True).stdout)
        open("/var/spool/tern/kept", "w").close()
        subprocess.run(["dpkg", "-r", "tern"], check=True, capture_output=True)
        assert os.path.exists("/var/spool/tern/kept")
        assert not os.path.exists("/usr/sbin/ternd")
    finally:
        subprocess.run(["dpkg", "-P", "tern"], capture_output=True)
        shutil.rmtree("/var/spool/tern", ignore_errors=True)
        subprocess.run(["userdel", "tern"], capture_output=True)
        subprocess.run(["groupdel", "tern"], capture_output=True)
