"""Token authentication: every bad credential is a 401 with WWW-Authenticate, never anonymous."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.devkeys import dev_jwks, mint_dev_token
from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, graphql_as, in_production, serving

pytestmark = pytest.mark.usefixtures("seeded")

QUERY = '{ enterprise(uscc: "91330110MAJPDCW44H") { name integrityLevel { grade } } }'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {
        "sub": "attacker",
        "role": "operator",
        "iss": settings.auth_issuer,
        "aud": settings.auth_audience,
        "iat": now,
        "exp": now + 600,
    }
    return claims | overrides


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _dev(settings: Settings, **kwargs: Any) -> str:
    defaults: dict[str, Any] = {
        "issuer": settings.auth_issuer,
        "audience": settings.auth_audience,
        "claims": {"sub": "u-1", "role": "member"},
        "ttl": dt.timedelta(minutes=10),
    }
    return mint_dev_token(settings.dev_keys_dir, **(defaults | kwargs))


def _dev_kid(settings: Settings) -> str:
    kid: str = dev_jwks(settings.dev_keys_dir)["keys"][0]["kid"]
    return kid


def _alg_none(settings: Settings) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": _dev_kid(settings)}
    return _unsigned(header, _claims(settings)) + "."


def _hs256_with_public_key(settings: Settings) -> str:
    """The classic confusion: HMAC keyed with the (public) verification key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": _dev_kid(settings)}
    signing_input = _unsigned(header, _claims(settings))
    secret = json.dumps(dev_jwks(settings.dev_keys_dir)["keys"][0]).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unknown_key(settings: Settings) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(settings), key, algorithm="ES256", headers={"kid": "not-ours"})


def _stolen_kid(settings: Settings) -> str:
    """Signed by another key but claiming the trusted key's id."""
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        _claims(settings), key, algorithm="ES256", headers={"kid": _dev_kid(settings)}
    )


def _rs256_header_on_ec_key(settings: Settings) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(
        _claims(settings), key, algorithm="RS256", headers={"kid": _dev_kid(settings)}
    )


def _expired(settings: Settings) -> str:
    return _dev(settings, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))


def _not_yet_valid(settings: Settings) -> str:
    return _dev(settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))


def _wrong_issuer(settings: Settings) -> str:
    return _dev(settings, issuer="https://evil.example")


def _wrong_audience(settings: Settings) -> str:
    return _dev(settings, audience="some-other-api")


def _no_role(settings: Settings) -> str:
    return _dev(settings, claims={"sub": "u-1"})


def _owner_without_enterprise(settings: Settings) -> str:
    return _dev(settings, claims={"sub": "u-1", "role": "owner"})


def _owner_of_invalid_uscc(settings: Settings) -> str:
    return _dev(
        settings, claims={"sub": "u-1", "role": "owner", "enterprise": "91330110MAJPDCW44G"}
    )


def _unknown_platform(settings: Settings) -> str:
    return _dev(settings, claims={"sub": "u-1", "role": "service", "platform": "Taobao"})


CASES = [
    (_alg_none, "the token algorithm 'none' is not accepted"),
    (_hs256_with_public_key, "the token algorithm 'HS256' is not accepted"),
    (_unknown_key, "the token is signed by an unknown key"),
    (_stolen_kid, "the token is invalid: Signature verification failed"),
    (_rs256_header_on_ec_key, "the token algorithm does not match its key"),
    (_expired, "the token has expired"),
    (_not_yet_valid, "the token is not valid yet"),
    (_wrong_issuer, "the token was issued by an untrusted issuer"),
    (_wrong_audience, "the token is not meant for this gateway"),
    (_no_role, "the token role must be one of member, owner, service, operator"),
    (_owner_without_enterprise, "an owner token must name its enterprise (claim 'enterprise')"),
    (
        _owner_of_invalid_uscc,
        "the token's enterprise is not a valid USCC: "
        "USCC position 18 fails the GB 32100 MOD 31 check",
    ),
    (_unknown_platform, "the token's platform must be one of 1688, taobao, tmall, alibaba_com"),
    (lambda settings: "abc.def.ghi", "the token is malformed"),
]


@pytest.mark.parametrize(("make", "reason"), CASES, ids=[case[0].__name__ for case in CASES])
async def test_bad_tokens_are_401_and_touch_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    recorder: CommandRecorder,
    make: Any,
    reason: str,
) -> None:
    recorder.clear()
    response = await client.post(
        "/graphql", json={"query": QUERY}, headers={"authorization": f"Bearer {make(settings)}"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {"message": f"Unauthorized: {reason}.", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    }
    assert response.headers["www-authenticate"] == (
        'Bearer realm="integrity-gateway", error="invalid_token", '
        f'error_description="{reason.replace(chr(34), chr(39))}"'
    )
    assert recorder.commands == []


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token"])
async def test_a_header_that_is_not_bearer_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.post(
        "/graphql", json={"query": QUERY}, headers={"authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == (
        "Unauthorized: the Authorization header must be 'Bearer <token>'."
    )


async def test_no_token_is_anonymous(client: httpx.AsyncClient) -> None:
    body = await graphql_as(client, {}, QUERY)
    assert body["data"] == {
        "enterprise": {"name": "杭州万邦网络科技有限公司", "integrityLevel": None}
    }
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_a_valid_dev_token_logs_in(
    client: httpx.AsyncClient, settings: Settings, scheme: str
) -> None:
    """The scheme is case-insensitive (RFC 9110 §11.1)."""
    token = bearer(settings, "member")["authorization"].removeprefix("Bearer ")
    body = await graphql_as(client, {"authorization": f"{scheme} {token}"}, QUERY)
    assert body == {
        "data": {
            "enterprise": {"name": "杭州万邦网络科技有限公司", "integrityLevel": {"grade": "B"}}
        }
    }


async def test_jwks_file_outside_dev_mode(settings: Settings, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": "prod-1", "alg": "RS256"}
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    production = in_production(
        settings, auth_jwks_file=jwks_file, auth_issuer="https://login.example"
    )
    token = jwt.encode(
        _claims(production, role="member"), key, algorithm="RS256", headers={"kid": "prod-1"}
    )
    async with serving(production) as client:
        accepted = await graphql_as(client, {"authorization": f"Bearer {token}"}, QUERY)
        dev = await client.post(
            "/graphql",
            json={"query": QUERY},
            headers={"authorization": f"Bearer {_dev(settings, issuer='https://login.example')}"},
        )
    assert accepted["data"]["enterprise"]["integrityLevel"] == {"grade": "B"}
    assert dev.status_code == 401
    assert (
        dev.json()["errors"][0]["message"] == "Unauthorized: the token is signed by an unknown key."
    )


@pytest.fixture
def jwks_url(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A JWKS endpoint on a local HTTP server, and the private key it publishes."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key())) | {"kid": "url-1", "alg": "ES256"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()


async def test_keys_from_a_jwks_url(settings: Settings, jwks_url: tuple[str, Any]) -> None:
    url, key = jwks_url
    production = in_production(settings, auth_jwks_url=url)
    token = jwt.encode(
        _claims(production, role="owner", enterprise="91330110MAJPDCW44H"),
        key,
        algorithm="ES256",
        headers={"kid": "url-1"},
    )
    stranger = jwt.encode(
        _claims(production),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "url-2"},
    )
    async with serving(production) as client:
        accepted = await graphql_as(
            client,
            {"authorization": f"Bearer {token}"},
            '{ enterprise(uscc: "91330110MAJPDCW44H") { legalRepresentative { maskedIdNumber } } }',
        )
        refused = await client.post(
            "/graphql", json={"query": QUERY}, headers={"authorization": f"Bearer {stranger}"}
        )
    masked = accepted["data"]["enterprise"]["legalRepresentative"]["maskedIdNumber"]
    assert masked is not None and masked[6:14] == "********"
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["message"] == (
        "Unauthorized: the token is signed by an unknown key."
    )


async def test_a_verified_token_is_remembered_until_it_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.auth import Authenticator

    authenticator = Authenticator.from_settings(settings)
    decoded = []
    decode = jwt.decode

    def counted(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    header = bearer(settings, "member", subject="remembered")["authorization"]
    first = await authenticator.authenticate(header)
    again = await authenticator.authenticate(header)
    assert first == again and first.subject == "remembered"
    assert len(decoded) == 1

    # Remembered no longer than the token is valid (with the leeway), nor than a minute.
    token = header.removeprefix("Bearer ")
    viewer, until = authenticator._verified[header]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert until <= min(expires + settings.auth_leeway_seconds, time.time() + 60)
    # Once that moment has passed, the token is verified again.
    authenticator._verified[header] = (viewer, 0.0)
    assert await authenticator.authenticate(header) == first
    assert len(decoded) == 3  # the unverified read above counts too
