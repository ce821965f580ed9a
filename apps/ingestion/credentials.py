"""Provider credentials encrypted at rest with Fernet, keys from SPENDWATCH_CREDENTIAL_KEYS.

The first key encrypts; every listed key decrypts, so a key is rotated by putting the new one first,
re-encrypting (`pull_source --reencrypt-credentials`) and then dropping the old one. Keys are never
derived from SECRET_KEY and a credential that cannot be decrypted is an error, never a fallback to the
stored text: ciphertext must never reach a provider as if it were a key (TESTPLAN H4).

A decrypted credential lives in a `Secret`, whose repr and str show only its last four characters, so
it cannot leak through a log line, an exception message or a template by accident.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

KEYS_SETTING = "SPENDWATCH_CREDENTIAL_KEYS"


class CredentialError(Exception):
    """A credential cannot be encrypted or decrypted; the message names the source, never a key."""


class Secret:
    """A plaintext credential that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def hint(self) -> str:
        return hint_for(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.hint})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Secret is not serialisable")


@sensitive_variables("value")
def hint_for(value: str) -> str:
    """What may be shown of a key (TESTPLAN H2): its last four characters."""
    return "…" + value[-4:] if len(value) >= 12 else "…"


@sensitive_variables("value")
def fingerprint(value: str) -> str:
    """A stable, non-reversible name for a key: sources sharing a key share its rate limit."""
    return hashlib.sha256(value.encode()).hexdigest()


def _keys() -> MultiFernet:
    raw = getattr(settings, KEYS_SETTING, None) or []
    if isinstance(raw, str):
        raw = [item.strip() for item in raw.split(",") if item.strip()]
    if not raw:
        raise CredentialError(f"{KEYS_SETTING} is not set: pull credentials cannot be encrypted or decrypted")
    fernets = []
    for position, key in enumerate(raw, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise CredentialError(
                f"{KEYS_SETTING} entry {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


@sensitive_variables("plaintext")  # error reports list frames' locals: never the key
def encrypt(plaintext: str) -> str:
    if not plaintext or not plaintext.strip():
        raise CredentialError("an empty credential cannot be stored")
    return _keys().encrypt(plaintext.strip().encode()).decode("ascii")


@sensitive_variables("plaintext")
def decrypt(ciphertext: str, *, source_name: str) -> Secret:
    """The plaintext of a stored credential; CredentialError naming the source if it cannot be read."""
    if not ciphertext:
        raise CredentialError(f"pull source {source_name!r} has no credential")
    keys = _keys()
    try:
        plaintext = keys.decrypt(ciphertext.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise CredentialError(
            f"the credential of pull source {source_name!r} cannot be decrypted with the keys in "
            f"{KEYS_SETTING} (was the key it was encrypted with removed?)"
        ) from None
    return Secret(plaintext.decode())


def reencrypt(ciphertext: str, *, source_name: str) -> str:
    """The same credential encrypted with the first (newest) key."""
    try:
        return _keys().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError):
        raise CredentialError(
            f"the credential of pull source {source_name!r} cannot be decrypted with the keys in "
            f"{KEYS_SETTING}"
        ) from None
