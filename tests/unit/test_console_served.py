"""`vigil serve` as a process: HTTPS with the inventory's certificate (verified by the
client against it), HSTS, and a session cookie that is Secure, HttpOnly and SameSite."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT

PASSWORD = "served password 1"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem = folder / "console.crt", folder / "console.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_the_console_served_over_tls_with_safe_cookies(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    crt, pem = _certificate(tmp_path)
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventory/demo", inv)
    (inv / "group_vars/all/console.yml").write_text(yaml.safe_dump({"vigil_console": {
        "listen": f"127.0.0.1:{port}", "tls_cert": str(crt), "tls_key": str(pem)}}))
    env = {"VIGIL_STORE": str(tmp_path / "s.db"), "PATH": "/usr/bin:/bin"}
    made = subprocess.run([sys.executable, "-m", "vigil", "users", "add", "ops-duty",
                           "--password-stdin", "--json", "-i", str(inv)], input=PASSWORD,
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen([sys.executable, "-m", "vigil", "serve", "-i", str(inv)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        client = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(crt))
        deadline = time.monotonic() + 60
        while True:
            try:
                page = client.get("/login")
                break
            except httpx.ConnectError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token
        secret = json.loads(made.stdout)["totp_secret"]
        signed = client.post("/login", data={"token": token[1], "next": "/",
                                             "contact": "ops-duty", "password": PASSWORD,
                                             "code": pyotp.TOTP(secret).now()})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
        assert PASSWORD.lower() not in cookie
        # Plain HTTP to the TLS port gets no page.
        try:
            plain = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
            assert plain.status_code >= 400
        except httpx.HTTPError:
            pass
        client.close()
    finally:
        server.terminate()
        assert server.wait(timeout=30) in (0, 143)  # SIGTERM stops it (128 + 15)
