"""Browser pages on other origins: CORS off by default, and from settings when on."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.conftest import serving

pytestmark = pytest.mark.usefixtures("seeded")

ALLOWED = "https://archive.example.com"
QUERY = {"query": "{ __typename }"}


def _preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


def _cors(response: httpx.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.startswith("access-control-")
    }


async def test_off_by_default_no_page_on_another_origin_may_call(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/graphql", headers=_preflight(ALLOWED))
    assert preflight.status_code == 405
    assert _cors(preflight) == {}
    posted = await client.post("/graphql", json=QUERY, headers={"origin": ALLOWED})
    assert posted.status_code == 200
    assert _cors(posted) == {}


async def test_named_origins_get_a_cached_preflight_and_readable_headers(
    settings: Settings,
) -> None:
    configured = settings.model_copy(
        update={
            "cors_allowed_origins": [ALLOWED],
            "cors_allow_credentials": True,
            "cors_max_age_seconds": 900,
        }
    )
    async with serving(configured) as http:
        preflight = await http.options("/graphql", headers=_preflight(ALLOWED))
        refused = await http.options("/graphql", headers=_preflight("https://evil.example"))
        posted = await http.post("/graphql", json=QUERY, headers={"origin": ALLOWED})
        foreign = await http.post(
            "/graphql", json=QUERY, headers={"origin": "https://evil.example"}
        )

    assert preflight.status_code == 200
    assert _cors(preflight) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": (
            "Accept, Accept-Language, Content-Language, Content-Type, authorization, x-request-id"
        ),
        "access-control-allow-credentials": "true",
        "access-control-max-age": "900",
    }
    assert preflight.headers["vary"] == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
        "Access-Control-Request-Private-Network"
    )
    assert len(preflight.headers["x-request-id"]) == 32

    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    assert posted.status_code == 200
    assert posted.json()["data"] == {"__typename": "Query"}
    assert _cors(posted) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": (
            "x-request-id, ratelimit-policy, ratelimit-limit, ratelimit-remaining, "
            "ratelimit-reset, retry-after"
        ),
    }
    # A page elsewhere is answered (CORS is the browser's rule) without the grant, so
    # its browser does not let it read the answer.
    assert foreign.status_code == 200
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"cors_allowed_origins": ["archive.example.com"]}, "is not an origin"),
        ({"cors_allowed_origins": ["https://archive.example.com/"]}, "is not an origin"),
        ({"cors_allowed_origins": ["https://a.example", "*"]}, "is not an origin"),
        (
            {"cors_allowed_origins": ["*"], "cors_allow_credentials": True},
            "CORS_ALLOW_CREDENTIALS needs the origins named",
        ),
    ],
)
def test_origins_are_checked_at_start_up(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**update)  # type: ignore[arg-type]
