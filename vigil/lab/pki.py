"""An OpenSSL CA with an OCSP responder and TLS endpoints whose certificates it issued.

The CA / e-seal service of P4.3.6: one endpoint with a good certificate, one with a
revoked one, a CRL, and the responder that answers for both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.procs import alive, port_open, read_pid, run, spawn, stop, wait_for

OCSP_PORT = 18880
TLS_GOOD_PORT = 18443
TLS_REVOKED_PORT = 18444
TLS_EXPIRED_PORT = 18445

_CONFIG = """\
[ ca ]
default_ca = lab
[ lab ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 7
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{ocsp}
[ ocsp_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
"""


class Pki(Component):
    name = "pki"

    def path(self, name: str) -> Path:
        return self.dir / name

    def _openssl(self, *args: str) -> None:
        run(["openssl", *args], cwd=self.dir)

    def _issue(self, name: str, cn: str, ext: str, *dates: str) -> None:
        if self.path(f"{name}.crt").exists():
            return
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                      "-subj", f"/CN={cn}")
        self._openssl("ca", "-batch", "-config", "openssl.cnf", "-extensions", ext,
                      "-in", f"{name}.csr", "-out", f"{name}.crt", "-notext", *dates)

    def _build(self) -> None:
        (self.dir / "newcerts").mkdir(exist_ok=True)
        self.path("openssl.cnf").write_text(_CONFIG.format(dir=self.dir, ocsp=OCSP_PORT))
        for name, content in (("index.txt", ""), ("serial", "1000\n"), ("crlnumber", "1000\n")):
            if not self.path(name).exists():
                self.path(name).write_text(content)
        if not self.path("ca.crt").exists():
            self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                          "-out", "ca.crt", "-days", "3650", "-subj", "/CN=Vigil Lab Root CA",
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._issue("ocsp", "Vigil Lab OCSP Responder", "ocsp_ext")
        self._issue("server", "localhost", "server_ext")
        if not self.path("revoked.crt").exists():
            self._issue("revoked", "localhost", "server_ext")
            self._openssl("ca", "-config", "openssl.cnf", "-revoke", "revoked.crt",
                          "-crl_reason", "keyCompromise")
        self._issue("expired", "localhost", "server_ext", "-startdate", "20240101000000Z",
                    "-enddate", "20240201000000Z")
        pristine = self.path("index.pristine")
        if not pristine.exists():
            pristine.write_bytes(self.path("index.txt").read_bytes())

    def _heal(self) -> None:
        """After a drill that revoked something, put the CA back as built and make the
        responder read the index again."""
        pristine = self.path("index.pristine")
        if pristine.read_bytes() != self.path("index.txt").read_bytes():
            self.path("index.txt").write_bytes(pristine.read_bytes())
            stop(self._pid("ocsp"), "openssl")
        self._openssl("ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem")

    def revoke(self, name: str) -> None:
        """Revoke an issued certificate in the CA's index and CRL (fault injection); the
        OCSP responder is restarted to read the index, as a CA operator would."""
        self._openssl("ca", "-config", "openssl.cnf", "-revoke", f"{name}.crt",
                      "-crl_reason", "keyCompromise")
        self._openssl("ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem")
        stop(self._pid("ocsp"), "openssl")
        self._start_services()

    def stop_service(self, service: str) -> None:
        stop(self._pid(service), "openssl")

    def _services(self) -> dict[str, tuple[int, list[str]]]:
        return {
            "ocsp": (OCSP_PORT, ["openssl", "ocsp", "-index", "index.txt",
                                 "-port", str(OCSP_PORT), "-rsigner", "ocsp.crt",
                                 "-rkey", "ocsp.key", "-CA", "ca.crt", "-ignore_err"]),
            "tls-good": (TLS_GOOD_PORT, self._tls(TLS_GOOD_PORT, "server")),
            "tls-revoked": (TLS_REVOKED_PORT, self._tls(TLS_REVOKED_PORT, "revoked")),
            "tls-expired": (TLS_EXPIRED_PORT, self._tls(TLS_EXPIRED_PORT, "expired")),
        }

    def _tls(self, port: int, name: str) -> list[str]:
        return ["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
                "-cert", f"{name}.crt", "-key", f"{name}.key", "-CAfile", "ca.crt",
                "-www", "-quiet"]

    def _pid(self, service: str) -> int | None:
        pid = read_pid(self.path(f"{service}.pid"))
        return pid if alive(pid) and pid else None

    def up(self) -> None:
        self._build()
        self._heal()
        self._start_services()

    def _start_services(self) -> None:
        for service, (port, cmd) in self._services().items():
            if self._pid(service):
                continue
            full = ["sh", "-c", f'cd "{self.dir}" && exec "$@"', "sh", *cmd]
            pid = spawn(full, self.path(f"{service}.log"))
            self.path(f"{service}.pid").write_text(f"{pid}\n")
            wait_for(self._answering(service, port), f"{service} on {port}", 20)

    def _answering(self, service: str, port: int) -> Callable[[], bool]:
        if service == "ocsp":
            return self.ocsp_answers
        return lambda: port_open("127.0.0.1", port)

    def ocsp_answers(self) -> bool:
        """Ask a real OCSP question. (A bare TCP connect sends OpenSSL 3.0's responder into
        a busy loop that never answers again, so readiness must never probe it that way.)"""
        out = run(["openssl", "ocsp", "-issuer", "ca.crt", "-cert", "server.crt",
                   "-url", f"http://127.0.0.1:{OCSP_PORT}", "-CAfile", "ca.crt",
                   "-timeout", "3"], cwd=self.dir, check=False, timeout=10)
        return any(f"server.crt: {s}" in out.stdout for s in ("good", "revoked"))

    def down(self) -> None:
        for service in self._services():
            stop(self._pid(service), "openssl")
            self.path(f"{service}.pid").unlink(missing_ok=True)

    def status(self) -> list[Health]:
        out = []
        for service, (port, _) in self._services().items():
            ok = bool(self._pid(service)) and self._answering(service, port)()
            out.append(Health(service, ok, f"127.0.0.1:{port}" if ok else "stopped"))
        return out
