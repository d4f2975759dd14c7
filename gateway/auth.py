"""Bearer-token authentication: a verified JWT becomes a Viewer, anything else a 401.

Only asymmetric algorithms are accepted (RS256, ES256), and each key only with its own
algorithm, so ``alg: none`` and HMAC-with-a-public-key confusion cannot verify. Issuer,
audience, expiry and not-before are checked with a small leeway. A request that sends
a token that does not verify is rejected, never served as anonymous.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from gateway.devkeys import dev_jwks
from gateway.settings import PLATFORM_CLAIMS, Settings
from gateway.viewer import Anonymous, Member, Operator, Owner, ServiceClient, Viewer
from loaders.codes import UsccError, validate_uscc

__all__ = ["ALGORITHMS", "Authenticator", "TokenError"]

ALGORITHMS = ("RS256", "ES256")
_REMEMBER_S = 60.0
_REMEMBERED_TOKENS = 4096
#: The scheme is case-insensitive (RFC 9110 §11.1): "bearer" and "BEARER" are "Bearer".
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9_.~+/=-]+)$", re.IGNORECASE)
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class TokenError(Exception):
    """Why a presented credential was refused (safe to show the caller)."""


@dataclass(frozen=True, slots=True)
class Authenticator:
    issuer: str
    audience: str
    leeway_seconds: int
    keys: dict[str, PyJWK]
    jwks_client: PyJWKClient | None = None
    #: Tokens verified in the last minute, with their viewer and expiry, by the whole
    #: Authorization header that carried them: a client sends the same header on every
    #: request, and verifying an ES256 signature costs more than serving a small answer
    #: (so does matching a header of some 600 characters against its pattern, spared too
    #: once the header has passed). Kept a minute at most, so a key taken out of the JWKS
    #: stops being trusted within a minute here too.
    _verified: OrderedDict[str, tuple[Viewer, float]] = field(default_factory=OrderedDict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        settings.require_trusted_keys()
        keys: dict[str, PyJWK] = {}
        if settings.auth_jwks_file is not None:
            keys.update(_keyset(settings.auth_jwks_file.read_text(encoding="utf-8")))
        if settings.gateway_dev_mode:
            keys.update(_keyset(json.dumps(dev_jwks(settings.dev_keys_dir))))
        client = (
            PyJWKClient(settings.auth_jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if settings.auth_jwks_url
            else None
        )
        return cls(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway_seconds=settings.auth_leeway_seconds,
            keys=keys,
            jwks_client=client,
        )

    async def authenticate(self, authorization: str | None) -> Viewer:
        if authorization is None:
            return Anonymous()
        now = time.time()
        remembered = self._verified.get(authorization)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        match = _BEARER.match(authorization.strip())
        if match is None:
            raise TokenError("the Authorization header must be 'Bearer <token>'")
        viewer, expires = await self._verify(match.group(1))
        self._verified[authorization] = (
            viewer,
            min(expires + self.leeway_seconds, now + _REMEMBER_S),
        )
        while len(self._verified) > _REMEMBERED_TOKENS:
            self._verified.popitem(last=False)
        return viewer

    async def _verify(self, token: str) -> tuple[Viewer, float]:
        """The viewer a token stands for and when the token expires, or TokenError."""
        key = await self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token was issued by an untrusted issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is not meant for this gateway") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"the token is invalid: {exc}") from None
        return viewer_from_claims(claims), float(claims["exp"])

    async def _key_for(self, token: str) -> PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenError(f"the token algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None and self.jwks_client is not None:
            try:
                key = await asyncio.to_thread(self.jwks_client.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError:
                key = None
        if key is None:
            raise TokenError("the token is signed by an unknown key")
        if key.algorithm_name != algorithm:
            raise TokenError("the token algorithm does not match its key")
        return key


def _keyset(text: str) -> dict[str, PyJWK]:
    keys = {}
    for key in PyJWKSet.from_json(text).keys:
        if key.key_id is None or key.algorithm_name not in ALGORITHMS:
            continue  # a key without kid or with a symmetric algorithm is never trusted
        keys[key.key_id] = key
    return keys


def _text_claim(claims: dict[str, object], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TokenError(f"the token claim {name!r} must be a non-empty string")
    return value


def viewer_from_claims(claims: dict[str, object]) -> Viewer:
    """The viewer a verified token describes; its claims must fit its role."""
    subject = _text_claim(claims, "sub") or ""
    platform = _text_claim(claims, "platform")
    if platform is not None and platform not in PLATFORM_CLAIMS:
        # A platform's field set is enforced by this claim: one misspelt must not
        # pass for no platform at all.
        raise TokenError(f"the token's platform must be one of {', '.join(PLATFORM_CLAIMS)}")
    role = claims.get("role")
    if role == "member":
        return Member(subject=subject, platform=platform)
    if role == "owner":
        enterprise = _text_claim(claims, "enterprise")
        if enterprise is None:
            raise TokenError("an owner token must name its enterprise (claim 'enterprise')")
        try:
            return Owner(subject=subject, enterprise=validate_uscc(enterprise), platform=platform)
        except UsccError as exc:
            raise TokenError(f"the token's enterprise is not a valid USCC: {exc}") from None
    if role == "service":
        scope = _text_claim(claims, "scope") or ""
        return ServiceClient(subject=subject, platform=platform, scopes=frozenset(scope.split()))
    if role == "operator":
        return Operator(subject=subject)
    raise TokenError("the token role must be one of member, owner, service, operator")
