"""Log lines carry their request's id, as text or as one JSON object per line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from gateway.logs import REQUEST_ID, handler
from gateway.settings import Settings
from tests.conftest import bearer, serving

MASKED = "query($u: USCC!) { enterprise(uscc: $u) { legalRepresentative { maskedIdNumber } } }"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the gateway's loggers write while the test runs, as GATEWAY_LOG_FORMAT=json."""
    stream = io.StringIO()
    out = handler("json", stream)
    loggers = [logging.getLogger(name) for name in ("integrity_gateway", "loaders")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(out)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(out)
            logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_its_fields_and_the_current_request_id() -> None:
    stream = io.StringIO()
    out = handler("json", stream)
    record = logging.LogRecord(
        "loaders.x", logging.WARNING, __file__, 1, "%s down", ("redis",), None
    )
    token = REQUEST_ID.set("req-12345678")
    try:
        out.handle(record)
    finally:
        REQUEST_ID.reset(token)
    [line] = _lines(stream)
    assert str(line.pop("time")).endswith("+00:00")
    assert line == {
        "level": "WARNING",
        "logger": "loaders.x",
        "message": "redis down",
        "request_id": "req-12345678",
    }


def test_text_lines_carry_the_request_id_too() -> None:
    stream = io.StringIO()
    out = handler("text", stream)
    out.handle(logging.LogRecord("gateway.x", logging.INFO, __file__, 1, "hello", None, None))
    assert stream.getvalue().endswith(" INFO gateway.x [-]: hello\n")


async def test_the_access_line_is_json_with_its_request(
    client: httpx.AsyncClient, json_lines: io.StringIO
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": '{ enterprise(uscc: "91330110MAJPDCW44H") { name } }'},
        headers={"x-request-id": "json-log-1"},
    )
    assert response.status_code == 200
    [access] = [line for line in _lines(json_lines) if line["logger"] == "integrity_gateway.access"]
    assert access["request_id"] == "json-log-1"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/graphql", 200)
    assert "91330110MAJPDCW44H" not in json_lines.getvalue()


async def test_a_line_written_deep_in_a_request_carries_its_id(
    settings: Settings, seeded: list[str], silent_server: str, json_lines: io.StringIO
) -> None:
    """The audit writer, two layers below the view, is not handed the id: it has it."""
    down = settings.model_copy(update={"audit_mongodb_url": silent_server, "audit_timeout_ms": 200})
    async with serving(down) as client:
        response = await client.post(
            "/graphql",
            json={"query": MASKED, "variables": {"u": seeded[0]}},
            headers=bearer(settings, "operator") | {"x-request-id": "json-log-2"},
        )
    assert response.status_code == 200
    audit = [line for line in _lines(json_lines) if line["logger"] == "loaders.audit"]
    # At start-up, outside any request: its indexes could not be made.
    assert audit[0]["request_id"] == "-"
    assert str(audit[0]["message"]).startswith("records indexes not ensured")
    assert audit[1:] == [
        {
            "time": audit[1]["time"],
            "level": "ERROR",
            "logger": "loaders.audit",
            "message": "audit trail not written (1 records of request json-log-2): "
            "TimeoutError; sensitive fields withheld",
            "request_id": "json-log-2",
        }
    ]
