"""Personal data at rest: the legal representatives' ID numbers, sealed (DESIGN §1).

Each number is stored as ``{"kid", "ciphertext", "blind_index"}``:

* ``ciphertext``: AES-256-GCM of the number, a fresh 96-bit nonce in front, the
  enterprise's USCC as associated data (a sealed number copied onto another enterprise
  does not open);
* ``kid``: the key that sealed it, so keys rotate (``integrity-gateway rotate-keys``)
  while every stored value still names the key that opens it;
* ``blind_index``: HMAC-SHA256 of the USCC and the normalised number, so a claimed
  number is compared without decrypting the stored one (``verifyLegalRepresentative``),
  and one person's number is not linkable across enterprises.

Keys come from ``PII_ENCRYPTION_KEYS`` (``kid:base64key[,kid:base64key…]``, 32-byte keys,
the first seals); each key is split by HKDF into an encryption key and an index key,
never used raw. Dev mode without the setting makes one key under the data directory
(as it does for signing keys); production without it does not start.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from bson import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.devkeys import write_secret_once
from gateway.settings import ConfigurationError, Settings

__all__ = ["Keyring", "PiiError", "dev_keys_path", "dev_keys_value", "is_sealed"]

_KID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_KEY_BYTES = 32
_NONCE_BYTES = 12
_DEV_FILE = "pii-keys"


class PiiError(Exception):
    """A sealed value that no configured key opens (unknown kid, or tampered)."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    aead: AESGCM
    index_key: bytes


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"integrity-gateway " + purpose
    ).derive(secret)


def _associated(uscc: str) -> bytes:
    return f"legal_representatives.id_number:{uscc}".encode()


def is_sealed(value: Any) -> bool:
    """Whether a stored ``id_number`` is sealed (rather than legacy plain text)."""
    return isinstance(value, Mapping) and {"kid", "ciphertext", "blind_index"} <= value.keys()


class Keyring:
    """The configured keys; the first seals, any opens what it sealed."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("PII_ENCRYPTION_KEYS names no key")
        self._keys: dict[str, _Key] = {}
        for kid, secret in keys:
            if kid in self._keys:
                raise ConfigurationError(f"PII_ENCRYPTION_KEYS names key {kid!r} twice")
            self._keys[kid] = _Key(
                kid,
                AESGCM(_derive(secret, b"aes-256-gcm v1")),
                _derive(secret, b"blind index v1"),
            )
        self.current = self._keys[keys[0][0]]

    @classmethod
    def parse(cls, value: str) -> Keyring:
        """``kid:base64key[,kid:base64key…]``; a clear error that never echoes a key."""
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(value.split(","), start=1):
            kid, sep, encoded = item.strip().partition(":")
            if not sep or not _KID.fullmatch(kid):
                raise ConfigurationError(
                    f"PII_ENCRYPTION_KEYS item {position} is not kid:base64key "
                    "(kid: 1 to 32 of A-Z a-z 0-9 _ . -)"
                )
            try:
                secret = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"PII_ENCRYPTION_KEYS key {kid!r} is not valid base64"
                ) from None
            if len(secret) != _KEY_BYTES:
                raise ConfigurationError(
                    f"PII_ENCRYPTION_KEYS key {kid!r} is {len(secret)} bytes; keys are 32 bytes"
                )
            keys.append((kid, secret))
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        configured = settings.pii_encryption_keys
        if configured is not None and configured.get_secret_value().strip():
            return cls.parse(configured.get_secret_value())
        if not settings.gateway_dev_mode:
            raise ConfigurationError(
                "GATEWAY_DEV_MODE is off and PII_ENCRYPTION_KEYS is not set: ID numbers "
                "cannot be sealed or opened without a key (see README, Personal data)"
            )
        return cls.parse(dev_keys_value(dev_keys_path(settings)))

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def seal(self, uscc: str, number: str) -> dict[str, Any]:
        """A normalised ID number, sealed for ``uscc``'s document with the first key."""
        key = self.current
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = key.aead.encrypt(nonce, number.encode(), _associated(uscc))
        return {
            "kid": key.kid,
            "ciphertext": Binary(nonce + ciphertext),
            "blind_index": Binary(self._index(key, uscc, number)),
        }

    def open(self, uscc: str, sealed: Mapping[str, Any]) -> str:
        key = self._key(sealed)
        blob = bytes(sealed["ciphertext"])
        try:
            plain = key.aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated(uscc))
        except InvalidTag:
            raise PiiError(
                f"a sealed ID number of {uscc} does not open with key {key.kid}"
            ) from None
        return plain.decode()

    def matches(self, uscc: str, sealed: Mapping[str, Any], number: str) -> bool:
        """Whether ``number`` (normalised) is the sealed one, without opening it."""
        key = self._key(sealed)
        return hmac.compare_digest(self._index(key, uscc, number), bytes(sealed["blind_index"]))

    def _key(self, sealed: Mapping[str, Any]) -> _Key:
        key = self._keys.get(str(sealed.get("kid")))
        if key is None:
            raise PiiError(f"no configured key has id {sealed.get('kid')!r}")
        return key

    @staticmethod
    def _index(key: _Key, uscc: str, number: str) -> bytes:
        return hmac.new(key.index_key, f"{uscc}|{number}".encode(), sha256).digest()


def dev_keys_path(settings: Settings) -> Path:
    """Where dev mode keeps its key for ID numbers."""
    return settings.gateway_data_dir / _DEV_FILE


def dev_keys_value(path: Path) -> str:
    """The development key (``kid:base64``), made on first use with mode 0600."""
    if not path.exists():
        value = f"dev-{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
        write_secret_once(path, (value + "\n").encode())
    return path.read_text().strip()
