"""No 500 for any input, bounded work per request and per process, a production that
does not publish its schema, and a cache that is busy or stuck is not a dead cache."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.auth import Authenticator
from gateway.cache import DocumentCache
from gateway.devkeys import dev_jwks
from gateway.embedded import free_port
from gateway.settings import ConfigurationError, Settings
from resolvers.engine import Engine
from tests.conftest import CommandRecorder, bearer, graphql, in_production, serving
from tests.test_archive import ARCHIVE, HANGZHOU, HANGZHOU_ARCHIVE, NAME
from tests.test_failures import FILES
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")


def only_error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    return response.status_code, error["extensions"]["code"], error["message"]


def nested_json(depth: int) -> str:
    return '{"x":' * depth + "1" + "}" * depth


async def test_body_just_under_the_limit_is_served_and_over_it_refused_while_reading(
    settings: Settings,
) -> None:
    limit = 2048
    async with serving(settings.model_copy(update={"limit_body_bytes": limit})) as client:
        base = orjson.dumps({"query": "{ __typename }"})
        padding = limit - len(base)
        under = base.replace(b"{ __typename }", b"{ __typename" + b" " * (padding + 1) + b"}")
        over = under.replace(b"{ __typename ", b"{ __typename  ")
        assert len(under) == limit and len(over) == limit + 1
        headers = {"content-type": "application/json"}
        served = await client.post("/graphql", content=under, headers=headers)

        async def stream(body: bytes) -> AsyncIterator[bytes]:
            # Chunked, no Content-Length: counted as it arrives.
            for start in range(0, len(body), 100):
                yield body[start : start + 100]

        served_chunked = await client.post("/graphql", content=stream(under), headers=headers)
        declared = await client.post("/graphql", content=over, headers=headers)
        chunked = await client.post("/graphql", content=stream(over), headers=headers)

    assert served.status_code == served_chunked.status_code == 200
    assert served.json()["data"] == served_chunked.json()["data"] == {"__typename": "Query"}
    expected = (
        413,
        "BODY_TOO_LARGE",
        "The request body is larger than 2048 bytes, the most allowed.",
    )
    assert only_error(declared) == only_error(chunked) == expected


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_deep_variables_are_a_400_never_a_500(client: httpx.AsyncClient, method: str) -> None:
    async def send(variables: str) -> httpx.Response:
        if method == "GET":
            return await client.get(
                "/graphql", params={"query": "{ __typename }", "variables": variables}
            )
        body = '{"query": "{ __typename }", "variables": ' + variables + "}"
        return await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )

    assert (await send(nested_json(8))).status_code == 200
    # Brackets inside a string nest nothing (the bracket count only decides whether
    # the depth is walked at all).
    assert (await send('{"s": "' + "[{" * 40 + '"}')).status_code == 200
    too_deep = (
        400,
        "VARIABLES_TOO_DEEP",
        "`variables` nests deeper than 8 levels, the most allowed.",
    )
    assert only_error(await send(nested_json(9))) == too_deep
    deepest = only_error(await send(nested_json(990)))
    assert deepest == too_deep


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MALFORMED = [
    (b'{"query": "{ __typename \xff }"}', JSON, "The request body is not valid UTF-8."),
    (b'{"query": ', JSON, "The request body is not valid JSON."),
    (b'{"query": 5}', JSON, "`query` must be a string or null."),
    (b'{"query": "{ __typename }", "variables": []}', JSON, "`variables` must be an object or null."),  # noqa: E501
    (b'{"query": "{ __typename }", "operationName": 1}', JSON, "`operationName` must be a string or null."),  # noqa: E501
    (b'[{"query": "{ __typename }"}]', JSON, "Batched operations are not supported."),
    (b'"{ __typename }"', JSON, "The request must be a JSON object."),
    (b'{"variables": {}}', JSON, "No GraphQL query found in the request."),
]  # fmt: skip


@pytest.mark.parametrize(("content", "content_type", "message"), MALFORMED)
async def test_malformed_requests_are_400s_with_a_graphql_shaped_body(
    client: httpx.AsyncClient, content: bytes, content_type: str, message: str
) -> None:
    headers = {"content-type": content_type}
    response = await client.post("/graphql", content=content, headers=headers)
    assert only_error(response) == (400, "BAD_REQUEST", message)
    assert len(response.headers["x-request-id"]) == 32


async def test_a_form_post_is_refused_so_cross_site_forms_cannot_run_operations(
    client: httpx.AsyncClient,
) -> None:
    headers = {"content-type": FORM}
    response = await client.post("/graphql", content=b"query=%7B__typename%7D", headers=headers)
    message = "Send the operation as application/json."
    assert only_error(response) == (415, "UNSUPPORTED_MEDIA_TYPE", message)


async def test_other_methods_and_oversized_headers(client: httpx.AsyncClient) -> None:
    put = await client.put("/graphql", json={"query": "{ __typename }"})
    big = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"x-padding": "a" * 20_000}
    )
    mutation_by_get = await client.get("/graphql", params={"query": "mutation { __typename }"})
    assert only_error(put) == (405, "METHOD_NOT_ALLOWED", "GraphQL is served over GET and POST.")
    assert put.headers["allow"] == "GET, POST"
    # Every method reaches the endpoint itself (no router between): one answer for all.
    for method in ("OPTIONS", "DELETE", "PATCH"):
        other = await client.request(method, "/graphql")
        assert only_error(other) == (
            405, "METHOD_NOT_ALLOWED", "GraphQL is served over GET and POST."
        ), method  # fmt: skip
        assert other.headers["allow"] == "GET, POST"
        assert len(other.headers["x-request-id"]) == 32
    # The other routes still go through Starlette's router, behind the same front.
    missing = await client.get("/nowhere", headers={"x-request-id": "req-00000001"})
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "req-00000001")
    slashed = await client.post("/graphql/", json={"query": "{ __typename }"})
    assert (slashed.status_code, slashed.headers["location"]) == (307, "http://gateway/graphql")
    assert only_error(big)[:2] == (431, "HEADERS_TOO_LARGE")
    assert only_error(mutation_by_get)[:2] == (405, "METHOD_NOT_ALLOWED")


async def test_an_unexpected_exception_is_a_masked_500_with_the_request_id(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Authenticator, authorization: str | None) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Authenticator, "authenticate", broken)
    caplog.set_level(logging.ERROR, logger="integrity_gateway.errors")
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "boom-0001"}
    )
    assert only_error(response) == (
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal error; it has been logged with request id boom-0001.",
    )
    assert response.json()["errors"][0]["extensions"]["requestId"] == "boom-0001"
    assert "secret internals" not in response.text
    [record] = [r for r in caplog.records if r.name == "integrity_gateway.errors"]
    assert record.getMessage() == "unhandled error (request boom-0001)"
    assert record.exc_info is not None and "secret internals" in str(record.exc_info[1])


@pytest.mark.parametrize(
    ("province", "name"), [("71", "Taiwan"), ("81", "Hong Kong"), ("82", "Macao"), ("99", "none")]
)
async def test_a_uscc_outside_the_mainland_is_bad_user_input(
    client: httpx.AsyncClient, recorder: CommandRecorder, province: str, name: str
) -> None:
    from loaders.codes import uscc_check_chars

    first16 = f"91{province}0000MA0000AB"
    uscc = first16 + uscc_check_chars(first16)
    recorder.clear()
    body = await graphql(client, NAME, {"uscc": uscc})
    assert body["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        (
            f"Variable '$uscc' has invalid value: USCC positions 3-4 ({province}) name no "
            "mainland province-level division: the service covers subjects registered in "
            "mainland China only",
            "BAD_USER_INPUT",
        )
    ]
    assert recorder.commands == []


# --- Bounded work --------------------------------------------------------------------


async def test_beyond_the_in_flight_cap_is_503_at_once_and_healthz_still_answers(
    settings: Settings,
    silent_server: str,
    cold_cache: None,
) -> None:
    hung = settings.model_copy(
        update={
            "mongodb_url_platform_tmall": silent_server,
            "request_deadline_ms": 1500,
            "max_in_flight": 2,
        }
    )
    async with serving(hung) as client:
        member = bearer(settings, "member")
        payload = {"query": FILES, "variables": {"u": FULL}}
        stuck = [
            asyncio.ensure_future(client.post("/graphql", json=payload, headers=member))
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)  # both are waiting for the hung source
        refused = await client.post("/graphql", json={"query": "{ __typename }"})
        health = await client.get("/healthz")
        done = await asyncio.gather(*stuck)
        after = await client.post("/graphql", json={"query": "{ __typename }"})

    assert only_error(refused) == (
        503,
        "OVERLOADED",
        "This worker is answering 2 requests, its most; retry shortly.",
    )
    assert refused.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200


async def test_an_operation_that_outlives_its_deadline_is_cut_off_with_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort, for work that does not honour the deadline: the request is
    cancelled within a tenth of a second after deadline + grace, answered 503, and the
    worker goes on serving."""
    started = asyncio.Event()
    run = Engine.run

    async def stuck(self: Engine, query: str | None, *args: Any) -> dict[str, Any]:
        if query == "{ stuck: __typename }":
            started.set()
            await asyncio.Event().wait()  # never set
        return await run(self, query, *args)

    monkeypatch.setattr(Engine, "run", stuck)
    async with serving(settings.model_copy(update={"request_deadline_ms": 100})) as client:
        cut_off = await asyncio.wait_for(
            client.post("/graphql", json={"query": "{ stuck: __typename }"}), 10
        )
        after = await client.post("/graphql", json={"query": "{ __typename }"})

        # Cancelled by anything else (the client went away), it is not a timeout.
        started.clear()
        leaving = asyncio.ensure_future(
            client.post("/graphql", json={"query": "{ stuck: __typename }"})
        )
        await started.wait()
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving

    assert only_error(cut_off) == (503, "TIMEOUT", "The request ran out of time; retry shortly.")
    assert after.json()["data"] == {"__typename": "Query"}


# --- A busy or stuck cache is not a dead one --------------------------------------------


async def test_more_concurrent_requests_than_pool_connections_never_go_to_mongodb(
    settings: Settings, recorder: CommandRecorder
) -> None:
    small_pool = settings.model_copy(update={"redis_pool_size": 2, "redis_pool_timeout_ms": 5000})
    app = create_app(small_pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            warm = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
            recorder.clear()
            bodies = await asyncio.gather(
                *(graphql(client, ARCHIVE, {"uscc": HANGZHOU}) for _ in range(40))
            )
        cache: DocumentCache = app.state.runtime.cache
        assert cache.available
    assert warm == {"data": {"enterprise": HANGZHOU_ARCHIVE}}
    assert all(body == warm for body in bodies)
    assert recorder.finds() == []


async def test_a_failed_call_on_a_live_redis_does_not_open_the_fallback(
    settings: Settings,
) -> None:
    """A timeout can be a late event loop; the probe finds Redis alive."""
    assert settings.redis_url is not None
    cache = DocumentCache.from_url(settings.redis_url, ttl_seconds=60)
    try:
        cache.suspect("MGET", TimeoutError())
        assert cache._probing is not None
        await cache._probing
        assert cache.available
    finally:
        await cache.close()


async def test_a_dead_redis_opens_the_fallback_after_the_probe_fails() -> None:
    cache = DocumentCache.from_url(f"redis://127.0.0.1:{free_port()}/0", ttl_seconds=60)
    try:
        assert await cache.get_many(["k"]) == {}
        assert cache._probing is not None
        await cache._probing
        assert not cache.available
        assert await cache.get_many(["k"]) == {}  # no call until the retry interval
    finally:
        await cache.close()


async def test_a_slow_mongodb_does_not_disable_a_healthy_redis(
    settings: Settings,
    silent_server: str,
    cold_cache: None,
) -> None:
    hung = settings.model_copy(
        update={"mongodb_url_platform_tmall": silent_server, "request_deadline_ms": 300}
    )
    app = create_app(hung)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            member = bearer(settings, "member")
            payload = {"query": FILES, "variables": {"u": FULL}}
            await asyncio.gather(
                *(client.post("/graphql", json=payload, headers=member) for _ in range(10))
            )
        assert app.state.runtime.cache.available


# --- Production exposure -----------------------------------------------------------------

INTROSPECTION = "{ __schema { queryType { name } } }"
TYPO = f'{{ enterprise(uscc: "{HANGZHOU}") {{ nam }} }}'


@pytest.fixture
def production(settings: Settings, tmp_path: Path) -> Settings:
    """Dev mode off; the development key served as a JWKS file, so tokens still verify."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(dev_jwks(settings.dev_keys_dir)), encoding="utf-8")
    return in_production(settings, auth_jwks_file=jwks)


@pytest.mark.parametrize("role", ["anonymous", "member"])
async def test_production_hides_the_schema_from_anonymous_viewers_and_members(
    production: Settings, settings: Settings, role: str
) -> None:
    headers = {} if role == "anonymous" else bearer(settings, role)
    async with serving(production) as client:
        introspection = await client.post(
            "/graphql", json={"query": INTROSPECTION}, headers=headers
        )
        typo = await client.post("/graphql", json={"query": TYPO}, headers=headers)
        ide = await client.get("/graphql", headers={"accept": "text/html"})
    assert [e["message"] for e in introspection.json()["errors"]] == [
        "GraphQL introspection has been disabled, but the requested query contained the "
        f"field '{field}'."
        for field in ("__schema", "queryType")
    ]
    assert [e["message"] for e in typo.json()["errors"]] == [
        "Cannot query field 'nam' on type 'Enterprise'."
    ]
    assert only_error(ide) == (404, "NOT_FOUND", "GraphiQL is served in dev mode only.")


async def test_production_still_shows_the_schema_to_operators(
    production: Settings, settings: Settings
) -> None:
    async with serving(production) as client:
        headers = bearer(settings, "operator")
        introspection = await client.post(
            "/graphql", json={"query": INTROSPECTION}, headers=headers
        )
        typo = await client.post("/graphql", json={"query": TYPO}, headers=headers)
    assert introspection.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert [e["message"] for e in typo.json()["errors"]] == [
        "Cannot query field 'nam' on type 'Enterprise'. Did you mean 'name'?"
    ]


async def test_dev_mode_serves_graphiql_and_introspection(client: httpx.AsyncClient) -> None:
    ide = await client.get("/graphql", headers={"accept": "text/html"})
    introspection = await client.post("/graphql", json={"query": INTROSPECTION})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    assert introspection.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_production_without_a_trusted_key_does_not_start(settings: Settings) -> None:
    keyless = in_production(settings)
    app = create_app(keyless)
    with pytest.raises(ConfigurationError, match="no trusted signing key is configured"):
        async with app.router.lifespan_context(app):
            pass


async def test_production_without_the_id_numbers_key_does_not_start(
    settings: Settings, production: Settings
) -> None:
    keyless = production.model_copy(update={"pii_encryption_keys": None})
    app = create_app(keyless)
    with pytest.raises(ConfigurationError, match="PII_ENCRYPTION_KEYS is not set"):
        async with app.router.lifespan_context(app):
            pass
