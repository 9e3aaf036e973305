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

from vigil.checks.base import Finding, Probe, ProbeParams, verdict
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status


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
                timeout: float) -> tuple[str, Say]:
    """(good | revoked | unknown | unreachable | invalid, detail)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    http = urllib.request.Request(url, data=request.public_bytes(serialization.Encoding.DER),
                                  headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(http, timeout=timeout) as reply:
            body = reply.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return "unreachable", Say(f"OCSP responder {url} unreachable ({reason})",
                                  f"OCSP 服务 {url} 无法访问（{reason}），无法确认证书状态")
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return "invalid", Say("OCSP responder sent an unreadable answer", "OCSP 应答无法解析")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        said = response.response_status.name
        return "invalid", Say(f"OCSP responder answered {said}", f"OCSP 服务应答 {said}")
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
        return "invalid", Say("OCSP answer's signature does not verify against the CA",
                              "OCSP 应答签名与 CA 不符")
    now = datetime.now(UTC)
    if response.next_update_utc and response.next_update_utc < now:
        return "invalid", Say("OCSP answer is stale (nextUpdate passed)", "OCSP 应答已过期")
    status = response.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        when = f"{response.revocation_time_utc:%Y-%m-%d %H:%M}"
        reason = response.revocation_reason.name if response.revocation_reason else "unspecified"
        return "revoked", Say(f"certificate REVOKED at {when} UTC ({reason})",
                              f"证书已于 {when} UTC 吊销（{reason}）")
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        return "unknown", Say("OCSP responder does not know this certificate",
                              "OCSP 服务不认识此证书")
    return "good", Say("OCSP good", "OCSP 状态正常")


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
            why = exc.strerror or str(exc)
            return check.result(Status.CRITICAL, Say(f"TLS endpoint {target} unreachable ({why})",
                                                     f"TLS 服务 {target} 无法连接（{why}）"),
                                target=target, reachable=False)
        metrics: dict[str, Metric] = {"reachable": True}
        findings: list[Finding] = []
        now = datetime.now(UTC)
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        metrics["days_to_expiry"] = round(days, 1)
        metrics["chain_valid"] = verify_error is None
        if days <= 0:
            ended = f"{cert.not_valid_after_utc:%Y-%m-%d}"
            findings.append((Status.CRITICAL, Say(f"certificate EXPIRED on {ended}",
                                                  f"证书已于 {ended} 过期")))
        elif days <= p.critical_days or days <= p.warning_days:
            findings.append((Status.CRITICAL if days <= p.critical_days else Status.WARNING,
                             Say(f"certificate expires in {days:.1f} days",
                                 f"证书将在 {days:.1f} 天后过期")))
        if verify_error and days > 0:
            findings.append((Status.CRITICAL, Say(f"chain not valid: {verify_error}",
                                                  f"证书链验证失败：{verify_error}")))

        issuer = find_issuer(cert, p.ca_file)
        if p.ocsp:
            url = p.ocsp_url or _aia_ocsp(cert)
            if issuer is None:
                findings.append((Status.UNKNOWN, Say("issuer not in ca_file: OCSP not asked",
                                                     "ca_file 中没有签发者证书：未查询 OCSP")))
            elif url is None:
                findings.append((Status.WARNING, Say(
                    "no OCSP URL configured or in the certificate", "未配置 OCSP 地址")))
            else:
                answer, detail = ocsp_status(cert, issuer, url, check.timeout_s)
                metrics["ocsp_status"] = answer
                if answer != "good":
                    findings.append((Status.CRITICAL, detail))
        if p.crl_file or p.crl_url:
            findings.extend(self._crl(p, cert, issuer, now, metrics, check.timeout_s))
        healthy = Say(f"certificate valid for {days:.0f} days, chain valid"
                      + (", OCSP good" if metrics.get("ocsp_status") == "good" else ""),
                      f"证书有效期剩余 {days:.0f} 天，证书链有效"
                      + ("，OCSP 状态正常" if metrics.get("ocsp_status") == "good" else ""))
        status, say = verdict(findings, healthy)
        return check.result(status, say, target=target, metrics=metrics)

    def _crl(self, p: CaParams, cert: x509.Certificate, issuer: x509.Certificate | None,
             now: datetime, metrics: dict[str, Metric], timeout: float) -> list[Finding]:
        try:
            crl = _load_crl(p, timeout)
        except (OSError, ValueError) as exc:
            return [(Status.CRITICAL, Say(f"CRL unreadable ({exc})", f"无法读取 CRL（{exc}）"))]
        found: list[Finding] = []
        nxt = crl.next_update_utc
        metrics["crl_hours_to_next_update"] = (
            round((nxt - now).total_seconds() / 3600, 1) if nxt else None)
        if issuer is not None and not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            found.append((Status.CRITICAL, Say("CRL signature does not verify",
                                               "CRL 签名验证失败")))
        if nxt is not None and nxt < now:
            when = f"{nxt:%Y-%m-%d %H:%M}"
            found.append((Status.CRITICAL, Say(f"CRL is stale: nextUpdate {when} UTC passed",
                                               f"CRL 已过期：应于 {when} UTC 前更新")))
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number):
            found.append((Status.CRITICAL, Say("certificate is on the CRL", "证书在吊销列表中")))
        return found
