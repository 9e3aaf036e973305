"""The two cryptographic suites of the offline exchange bundles (P4.3.1(3), P4.3.7).

`sm` (default): SM2 signatures and key wrapping, SM3 digests, SM4-GCM — what Chinese
treasury systems use. SM3 and SM4 come from `cryptography` (OpenSSL underneath); SM2 from
the `openssl` command itself, since `cryptography` does not load SM2 keys: OpenSSL 3 is
the reference implementation, so interoperating with it is by construction.
`intl`: Ed25519 signatures, X25519 + HKDF-SHA256 key wrapping, SHA-256, AES-256-GCM.

Keys are PEM files in a key folder, `<party>.sign.key.pem` / `<party>.sign.pub.pem` and
`<party>.enc.key.pem` / `<party>.enc.pub.pem`; never in code. Nonces and content keys come
from `os.urandom`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vigil.files import FileRefused, read_bounded

SM2_ID = "1234567812345678"  # GM/T 0009's default signer ID, OpenSSL's too
KEY_BYTES = 64 * 1024  # a PEM key is a few hundred bytes


class CryptoError(Exception):
    """A key is missing or unusable, or a signature / ciphertext does not verify."""


class Suite(Protocol):
    name: str

    def digest(self, data: bytes) -> str: ...
    def sign(self, key: Path, data: bytes) -> bytes: ...
    def verify(self, pub: Path, data: bytes, signature: bytes) -> bool: ...
    def wrap(self, pub: Path, secret: bytes) -> bytes: ...
    def unwrap(self, key: Path, blob: bytes) -> bytes: ...
    def seal(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes: ...
    def open(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes: ...
    def keygen(self, folder: Path, party: str) -> None: ...


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise CryptoError(f"openssl {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _gcm(cipher: type[algorithms.SM4] | type[algorithms.AES], key: bytes, nonce: bytes,
         data: bytes, aad: bytes, decrypt: bool) -> bytes:
    if decrypt:
        body, tag = data[:-16], data[-16:]
        dec = Cipher(cipher(key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            raise CryptoError("the payload does not decrypt (tampered, or another key)") from None
    enc = Cipher(cipher(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(data) + enc.finalize() + enc.tag


class SmSuite:
    name = "sm"

    def digest(self, data: bytes) -> str:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()

    def sign(self, key: Path, data: bytes) -> bytes:
        return _openssl("pkeyutl", "-sign", "-inkey", str(key), "-rawin", "-digest", "sm3",
                        "-pkeyopt", f"distid:{SM2_ID}", data=data)

    def verify(self, pub: Path, data: bytes, signature: bytes) -> bool:
        with tempfile.NamedTemporaryFile() as sig:
            sig.write(signature)
            sig.flush()
            proc = subprocess.run(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
                 "-digest", "sm3", "-pkeyopt", f"distid:{SM2_ID}", "-sigfile", sig.name],
                input=data, capture_output=True, timeout=60)
        return proc.returncode == 0

    def wrap(self, pub: Path, secret: bytes) -> bytes:
        return _openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), data=secret)

    def unwrap(self, key: Path, blob: bytes) -> bytes:
        return _openssl("pkeyutl", "-decrypt", "-inkey", str(key), data=blob)

    def seal(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return _gcm(algorithms.SM4, key[:16], nonce, data, aad, decrypt=False)

    def open(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return _gcm(algorithms.SM4, key[:16], nonce, data, aad, decrypt=True)

    def keygen(self, folder: Path, party: str) -> None:
        for use in ("sign", "enc"):
            key = folder / f"{party}.{use}.key.pem"
            _openssl("genpkey", "-algorithm", "SM2", "-out", str(key))
            key.chmod(0o600)
            _openssl("pkey", "-in", str(key), "-pubout", "-out",
                     str(folder / f"{party}.{use}.pub.pem"))


def _load_private(path: Path) -> object:
    try:
        return serialization.load_pem_private_key(read_bounded(path, KEY_BYTES, "key"), None)
    except (FileRefused, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"{path}: {exc}") from None


def _load_public(path: Path) -> object:
    try:
        return serialization.load_pem_public_key(read_bounded(path, KEY_BYTES, "key"))
    except (FileRefused, ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"{path}: {exc}") from None


def _kek(shared: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, None, b"vigil-exchange/1 key wrap").derive(shared)


class IntlSuite:
    name = "intl"

    def digest(self, data: bytes) -> str:
        h = hashes.Hash(hashes.SHA256())
        h.update(data)
        return h.finalize().hex()

    def sign(self, key: Path, data: bytes) -> bytes:
        private = _load_private(key)
        if not isinstance(private, Ed25519PrivateKey):
            raise CryptoError(f"{key}: not an Ed25519 key")
        return private.sign(data)

    def verify(self, pub: Path, data: bytes, signature: bytes) -> bool:
        public = _load_public(pub)
        if not isinstance(public, Ed25519PublicKey):
            raise CryptoError(f"{pub}: not an Ed25519 key")
        try:
            public.verify(signature, data)
            return True
        except InvalidSignature:
            return False

    def wrap(self, pub: Path, secret: bytes) -> bytes:
        public = _load_public(pub)
        if not isinstance(public, X25519PublicKey):
            raise CryptoError(f"{pub}: not an X25519 key")
        ephemeral = X25519PrivateKey.generate()
        nonce = os.urandom(12)
        sealed = AESGCM(_kek(ephemeral.exchange(public))).encrypt(nonce, secret, None)
        return ephemeral.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw) + nonce + sealed

    def unwrap(self, key: Path, blob: bytes) -> bytes:
        private = _load_private(key)
        if not isinstance(private, X25519PrivateKey):
            raise CryptoError(f"{key}: not an X25519 key")
        peer = X25519PublicKey.from_public_bytes(blob[:32])
        try:
            return AESGCM(_kek(private.exchange(peer))).decrypt(blob[32:44], blob[44:], None)
        except InvalidTag:
            raise CryptoError("the content key does not unwrap (another recipient's key)") from None

    def seal(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return _gcm(algorithms.AES, key, nonce, data, aad, decrypt=False)

    def open(self, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return _gcm(algorithms.AES, key, nonce, data, aad, decrypt=True)

    def keygen(self, folder: Path, party: str) -> None:
        pairs: dict[str, Ed25519PrivateKey | X25519PrivateKey] = {
            "sign": Ed25519PrivateKey.generate(), "enc": X25519PrivateKey.generate()}
        for use, private in pairs.items():
            key = folder / f"{party}.{use}.key.pem"
            key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
            key.chmod(0o600)
            (folder / f"{party}.{use}.pub.pem").write_bytes(private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


SUITES: dict[str, Suite] = {"sm": SmSuite(), "intl": IntlSuite()}
