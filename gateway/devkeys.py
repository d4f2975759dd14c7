"""The development signing key: created on first use, trusted only in dev mode.

One ES256 private key in ``<data dir>/dev-keys/private.pem`` (mode 0600); its public
JWKS is derived from it, so the two can never disagree. ``integrity-gateway token``
and ``make run`` mint tokens with it so a newcomer can try every role.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.settings import Settings

__all__ = ["ALL_SCOPES", "ROLES", "dev_jwks", "has_dev_key", "mint_dev_token", "mint_role_token"]

_PRIVATE = "private.pem"


def write_secret_once(path: Path, content: bytes) -> None:
    """Make ``path`` (mode 0600) hold ``content`` unless it exists: written aside, then
    linked into place, so two processes starting at once still agree on one secret."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another process won the race; keep theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _private_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    path = directory / _PRIVATE
    if not path.exists():
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_secret_once(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def has_dev_key(directory: Path) -> bool:
    """Whether a development key was made in ``directory`` (by ``serve``)."""
    return (directory / _PRIVATE).is_file()


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    thumbprint = hashlib.sha256(f"{jwk['crv']}:{jwk['x']}:{jwk['y']}".encode()).hexdigest()
    return {**jwk, "kid": f"dev-{thumbprint[:16]}", "alg": "ES256", "use": "sig"}


def dev_jwks(directory: Path) -> dict[str, Any]:
    return {"keys": [_public_jwk(_private_key(directory))]}


def mint_dev_token(
    directory: Path,
    *,
    issuer: str,
    audience: str,
    claims: dict[str, Any],
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> str:
    key = _private_key(directory)
    issued = now or dt.datetime.now(dt.UTC)
    payload = {
        **claims,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": _public_jwk(key)["kid"]})


ROLES = ("member", "owner", "service", "operator")
#: What `make run` hands a service client: every scope the schema knows.
ALL_SCOPES = (
    "identity:read",
    "identity:verify",
    "risk:read",
    "corrections:request",
    "corrections:resolve",
    "service-status:write",
)


def mint_role_token(
    settings: Settings,
    role: str,
    *,
    enterprise: str | None = None,
    scopes: Sequence[str] = (),
    platform: str | None = None,
    subject: str | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=1),
) -> str:
    """A dev token for one role, with the claims the gateway expects of it."""
    if not settings.gateway_dev_mode:
        raise ValueError("dev tokens are trusted only in dev mode (GATEWAY_DEV_MODE=true)")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "owner") != (enterprise is not None):
        raise ValueError("--enterprise is required for, and only for, the owner role")
    if scopes and role != "service":
        raise ValueError("--scope is only for the service role")
    claims: dict[str, Any] = {"sub": subject or f"dev-{role}", "role": role}
    if enterprise is not None:
        claims["enterprise"] = enterprise
    if scopes:
        claims["scope"] = " ".join(scopes)
    if platform is not None:
        claims["platform"] = platform
    return mint_dev_token(
        settings.dev_keys_dir,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        claims=claims,
        ttl=ttl,
    )
