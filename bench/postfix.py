# SPDX-License-Identifier: MIT
"""A private Postfix instance for comparison benchmarks, and OpenDKIM for it.

Everything lives under one directory given by the caller (the bench temp
dir): config, queue, data, log. Postfix listens on 127.0.0.1:PORT, has no
local domains and no local delivery, never looks anything up in DNS, and
relays everything to [127.0.0.1]:SINKPORT. It runs as root with the system's
`postfix` mail_owner, as the packaged daemons expect; the system instance
(/etc/postfix) is not touched.
"""
import os
import shutil
import subprocess
import time

# The services a relay-only instance needs; everything runs unchrooted so the
# queue directory needs no copy of /etc.
MASTER_CF = """\
{port} inet n - n - {smtpd_procs} smtpd{milter}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _main_cf(d, sink_port, concurrency, milter_port):
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": f"{d}/queue",
        "data_directory": f"{d}/data",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "postfix.bench.test",
        "mydomain": "bench.test",
        "myorigin": "bench.test",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "mydestination": "",
        "local_recipient_maps": "",
        "local_transport": "error:5.1.1 no local delivery in the bench instance",
        "alias_maps": "",
        "alias_database": "",
        "relayhost": f"[127.0.0.1]:{sink_port}",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "smtpd_recipient_restrictions": "permit_mynetworks, reject",
        "smtpd_peername_lookup": "no",
        "smtp_dns_support_level": "disabled",
        "smtp_host_lookup": "native",
        "disable_vrfy_command": "yes",
        "smtpd_tls_security_level": "none",
        "smtp_tls_security_level": "none",
        "smtpd_client_connection_rate_limit": "0",
        "in_flow_delay": "0",
        "default_process_limit": str(max(100, concurrency * 2 + 20)),
        "default_destination_concurrency_limit": str(concurrency),
        "smtp_destination_concurrency_limit": str(concurrency),
        "relay_destination_concurrency_limit": str(concurrency),
        "default_destination_recipient_limit": "50",
        "maillog_file": f"{d}/maillog",
        "maillog_file_prefixes": d,
        "biff": "no",
        "append_dot_mydomain": "no",
    }
    if milter_port:
        settings.update({
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
        })
    return "".join(f"{k} = {v}\n" for k, v in settings.items())


class Postfix:
    """One private instance: start() then stop(); config in DIR/etc."""

    def __init__(self, workdir, port, sink_port, concurrency=50, smtpd_procs=100,
                 milter_port=None):
        self.dir = os.path.join(workdir, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.port = port
        self.sink_port = sink_port
        self.concurrency = concurrency
        self.smtpd_procs = smtpd_procs
        self.milter_port = milter_port
        self.started = False

    def _postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.etc, *args], capture_output=True,
                              text=True, timeout=60)

    def configure(self):
        os.makedirs(self.etc, exist_ok=True)
        for sub in ("queue", "data"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        milter = ""
        if self.milter_port:
            milter = (f"\n  -o smtpd_milters=inet:127.0.0.1:{self.milter_port}"
                      "\n  -o non_smtpd_milters=")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=f"127.0.0.1:{self.port}",
                                     smtpd_procs=self.smtpd_procs, milter=milter))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(_main_cf(self.dir, self.sink_port, self.concurrency, self.milter_port))

    def start(self, timeout=20):
        self.configure()
        r = self._postfix("check")
        if r.returncode != 0:
            raise RuntimeError(f"postfix check failed:\n{r.stdout}{r.stderr}")
        r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed:\n{r.stdout}{r.stderr}\n{self.log()}")
        self.started = True
        _wait_port(self.port, timeout, "postfix", self.log)
        return self

    def queue_size(self):
        """Messages still in Postfix's queue (incoming, active, deferred)."""
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop"):
            for _root, _dirs, files in os.walk(os.path.join(self.dir, "queue", sub)):
                n += len(files)
        return n

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.started:
            self._postfix("stop")
            self.started = False


class OpenDKIM:
    """opendkim as a milter on 127.0.0.1:PORT, signing every message with one key."""

    def __init__(self, workdir, port, key_path, domain, selector):
        self.dir = os.path.join(workdir, "opendkim")
        self.port = port
        self.key_path = key_path
        self.domain = domain
        self.selector = selector
        self.proc = None

    def start(self, timeout=10):
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "opendkim.conf")
        with open(conf, "w") as f:
            f.write(f"Socket inet:{self.port}@127.0.0.1\n"
                    f"Domain {self.domain}\nSelector {self.selector}\nKeyFile {self.key_path}\n"
                    "Mode s\nCanonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\n"
                    "SubDomains yes\nInternalHosts 127.0.0.0/8\nSyslog no\n"
                    f"PidFile {self.dir}/opendkim.pid\nUserID root\n")
        self.stderr = open(os.path.join(self.dir, "stderr"), "ab")
        self.proc = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=self.stderr,
                                     stderr=self.stderr)
        _wait_port(self.port, timeout, "opendkim", self.log)
        return self

    def log(self):
        with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
            return f.read()[-4000:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.stderr.close()
        self.proc = None


def _wait_port(port, timeout, what, log):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after {timeout}s\n{log()}")
