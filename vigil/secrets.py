"""Credentials from ansible-vault or the environment, which never reach output or logs."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

ENV_PREFIX = "env:"


# Every value revealed in this process, so logs and events can be scrubbed of it.
_REVEALED: set[str] = set()


def redact(text: str) -> str:
    """Replace any revealed secret in `text` with ***."""
    for value in sorted(_REVEALED, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


class SecretInvalid(ValueError):
    """A secret field given something that is no secret; its value is never echoed."""


class SecretMissing(LookupError):
    """An `env:NAME` secret whose variable is not set where the check runs."""


class Secret:
    """A value read only by `reveal()`; str() and repr() show where it comes from."""

    __slots__ = ("_env", "_value", "origin")

    # `value` may be an ansible-vault ciphertext object, decrypted only by reveal().
    def __init__(self, *, value: Any = None, env: str | None = None, origin: str = "") -> None:
        self._value = value
        self._env = env
        self.origin = origin or (f"{ENV_PREFIX}{env}" if env else "inline")

    @classmethod
    def parse(cls, raw: Any) -> Secret:
        if isinstance(raw, Secret):
            return raw
        if "Encrypted" in type(raw).__name__:  # still ciphertext: decrypt on reveal()
            return cls(value=raw, origin="vault")
        if _was_vaulted(raw):  # templated from a vault value: already plaintext
            return cls(value=str(raw), origin="vault")
        if not isinstance(raw, str) or not raw.strip():
            # a URL, a password, a connection string: never a list, a number or nothing
            raise SecretInvalid(f"must be text (a vault value or env:NAME), not "
                             f"{type(raw).__name__ if raw is not None else 'empty'}")
        text = raw
        if text.startswith(ENV_PREFIX):
            name = text[len(ENV_PREFIX) :].strip()
            if not name:
                raise SecretInvalid("env: reference without a variable name")
            return cls(env=name)
        return cls(value=text, origin="inline")

    def reveal(self) -> str:
        if self._env is not None:
            try:
                return _remember(os.environ[self._env])
            except KeyError:
                raise SecretMissing(f"environment variable {self._env} is not set") from None
        try:
            return _remember(str(self._value))
        except Exception as exc:  # ansible raises its own error types for a missing vault key
            raise SecretMissing(
                "vault value cannot be decrypted: give --vault-password-file or set "
                f"ANSIBLE_VAULT_PASSWORD_FILE ({type(exc).__name__})") from None

    def __repr__(self) -> str:
        return f"Secret({self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self._env, self._value) == (other._env, other._value)

    def __hash__(self) -> int:
        return hash((self._env, self._value))


    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(repr))


def _was_vaulted(value: Any) -> bool:
    try:  # ansible-core >= 2.19 tags values that came out of a vault
        from ansible._internal._datatag._tags import SourceWasEncrypted, VaultedValue
    except ImportError:
        return False
    return VaultedValue.is_tagged_on(value) or SourceWasEncrypted.is_tagged_on(value)


def _remember(value: str) -> str:
    if len(value) >= 4:  # shorter values would scrub ordinary words
        _REVEALED.add(value)
    return value


SecretField = Annotated[Secret, "credential"]
