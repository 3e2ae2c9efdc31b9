# SPDX-License-Identifier: MIT
"""Throwaway TLS material for tests: one self-signed certificate, no CA.

The server certificate is its own issuer, so clients in these tests turn
verification off; what is under test is the STARTTLS exchange and what ternd
records about it, not the PKI.
"""
import os
import ssl
import subprocess


def make_cert(directory, common_name="mx.test"):
    """Write cert.pem and key.pem into directory; return (cert_path, key_path)."""
    cert = os.path.join(str(directory), "cert.pem")
    key = os.path.join(str(directory), "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + common_name,
                    "-addext", "subjectAltName=DNS:" + common_name],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_context():
    """A client context that accepts the self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def listener_options(cert, key):
    """The start_esmtp_listener options that enable STARTTLS with this pair."""
    return f"tls_certificate = '{cert}', tls_private_key = '{key}'"
