"""ca (ca_seal, P4.3.6): the CA / e-seal service's certificates and revocation.

A TLS endpoint's certificate: days to expiry, chain valid against the configured CA,
OCSP status asked of the responder (good / revoked / unknown / unreachable) with a
request built by `cryptography`, and CRL freshness. Without the CA nothing can be
signed, so the plan treats its faults like core-system faults.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from pydantic import Field

from checks.base import CheckSpec, Probe, ProbeParams
from checks.result import Metric, Result, Status, worst


class CaParams(ProbeParams):
    port: int = Field(443, ge=1, le=65535)
    address: str | None = None
    server_name: str | None = None  # SNI and the name the certificate must carry
    ca_file: str
    warning_days: float = Field(30, ge=0)
    critical_days: float = Field(7, ge=0)
    ocsp: bool = True
    ocsp_url: str | None = None  # default: the certificate's AIA
    crl_file: str | None = None
    crl_url: str | None = None


def fetch_certificate(address: str, port: int, server_name: str, ca_file: str,
                      timeout: float) -> tuple[x509.Certificate, str | None]:
    """The peer's certificate, and the reason verification failed (None if it passed)."""
    verified = ssl.create_default_context(cafile=ca_file)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                verified.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der), None
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
    # Verification failed: look at the certificate anyway, to say why and for how long.
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=timeout) as raw, \
            loose.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der), reason


def find_issuer(cert: x509.Certificate, ca_file: str) -> x509.Certificate | None:
    for candidate in x509.load_pem_x509_certificates(Path(ca_file).read_bytes()):
        if candidate.subject == cert.issuer:
            return candidate
    return None


def _verify_signature(signer: x509.Certificate, signature: bytes, data: bytes,
                      algorithm: hashes.HashAlgorithm | None) -> None:
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))  # type: ignore[arg-type]
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unsupported signer key {type(key).__name__}")


def ocsp_status(cert: x509.Certificate, issuer: x509.Certificate, url: str,
                timeout: float) -> tuple[str, str]:
    """(good | revoked | unknown | unreachable | invalid, detail)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    http = urllib.request.Request(url, data=request.public_bytes(serialization.Encoding.DER),
                                  headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(http, timeout=timeout) as reply:
            body = reply.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return "unreachable", f"OCSP responder {url} unreachable ({reason})"
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return "invalid", "OCSP responder sent an unreadable answer"
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "invalid", f"OCSP responder answered {response.response_status.name}"
    signer = issuer
    for delegate in response.certificates:  # a delegated responder must be the CA's own
        try:
            delegate.verify_directly_issued_by(issuer)
            eku = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            signer = delegate
    try:
        _verify_signature(signer, response.signature, response.tbs_response_bytes,
                          response.signature_hash_algorithm)
    except Exception:
        return "invalid", "OCSP answer's signature does not verify against the CA"
    now = datetime.now(UTC)
    if response.next_update_utc and response.next_update_utc < now:
        return "invalid", "OCSP answer is stale (nextUpdate passed)"
    status = response.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        when = response.revocation_time_utc
        reason = response.revocation_reason.name if response.revocation_reason else "unspecified"
        return "revoked", f"certificate REVOKED at {when:%Y-%m-%d %H:%M} UTC ({reason})"
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        return "unknown", "OCSP responder does not know this certificate"
    return "good", "OCSP good"


def _aia_ocsp(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP:
            return str(desc.access_location.value)
    return None


def _load_crl(p: CaParams, timeout: float) -> x509.CertificateRevocationList:
    if p.crl_url:
        with urllib.request.urlopen(p.crl_url, timeout=timeout) as reply:
            data = reply.read()
    else:
        assert p.crl_file
        data = Path(p.crl_file).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class CaProbe(Probe):
    kind = "ca"
    Params = CaParams

    def run(self, check: CheckSpec) -> Result:
        p: CaParams = check.params
        address = p.address or check.address
        name = p.server_name or address
        target = f"{address}:{p.port}"
        try:
            cert, verify_error = fetch_certificate(address, p.port, name, p.ca_file,
                                                   check.timeout_s)
        except OSError as exc:
            return check.result(Status.CRITICAL, f"TLS endpoint {target} unreachable "
                                f"({exc.strerror or exc})", target=target, reachable=False)
        metrics: dict[str, Metric] = {"reachable": True}
        findings: list[tuple[Status, str]] = []
        now = datetime.now(UTC)
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        metrics["days_to_expiry"] = round(days, 1)
        metrics["chain_valid"] = verify_error is None
        if days <= 0:
            findings.append((Status.CRITICAL, f"certificate EXPIRED on "
                             f"{cert.not_valid_after_utc:%Y-%m-%d}"))
        elif days <= p.critical_days:
            findings.append((Status.CRITICAL, f"certificate expires in {days:.1f} days"))
        elif days <= p.warning_days:
            findings.append((Status.WARNING, f"certificate expires in {days:.0f} days"))
        if verify_error and days > 0:
            findings.append((Status.CRITICAL, f"chain not valid: {verify_error}"))

        issuer = find_issuer(cert, p.ca_file)
        if p.ocsp:
            url = p.ocsp_url or _aia_ocsp(cert)
            if issuer is None:
                findings.append((Status.UNKNOWN, "issuer not in ca_file: OCSP not asked"))
            elif url is None:
                findings.append((Status.WARNING, "no OCSP URL configured or in the certificate"))
            else:
                verdict, detail = ocsp_status(cert, issuer, url, check.timeout_s)
                metrics["ocsp_status"] = verdict
                if verdict != "good":
                    findings.append((Status.CRITICAL, detail))
        if p.crl_file or p.crl_url:
            try:
                crl = _load_crl(p, check.timeout_s)
            except (OSError, ValueError) as exc:
                findings.append((Status.CRITICAL, f"CRL unreadable ({exc})"))
            else:
                nxt = crl.next_update_utc
                metrics["crl_hours_to_next_update"] = (
                    round((nxt - now).total_seconds() / 3600, 1) if nxt else None)
                if issuer is not None and not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    findings.append((Status.CRITICAL, "CRL signature does not verify"))
                if nxt is not None and nxt < now:
                    findings.append((Status.CRITICAL, f"CRL is stale: nextUpdate "
                                     f"{nxt:%Y-%m-%d %H:%M} UTC passed"))
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number):
                    findings.append((Status.CRITICAL, "certificate is on the CRL"))
        status = worst([s for s, _ in findings])
        message = "; ".join(t for _, t in findings) or (
            f"certificate valid for {days:.0f} days, chain valid"
            + (", OCSP good" if metrics.get("ocsp_status") == "good" else ""))
        return check.result(status, message, target=target, metrics=metrics)
