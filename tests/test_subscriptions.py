"""Live notifications over graphql-transport-ws: an owner's subscription hears its own
enterprise's notifications as they are sent, never another's; the protocol's refusals
close with its codes.

Starlette's test client runs the app (its own lifespan and stores' clients) on a
thread of its own, and speaks WebSocket to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pymongo import MongoClient
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import GATEWAY_DATABASE
from gateway.subscriptions import PROTOCOL
from tests.conftest import Stores, bearer

LIVE = "subscription ($u: USCC!) { notificationAdded(uscc: $u) { kind title body read } }"
REQUEST = """
mutation ($u: USCC!, $v: String!) {
  requestCorrection(uscc: $u, field: "businessScope", proposedValue: $v, explanation: "请更正") {
    correction { state }
  }
}
"""


@pytest.fixture(scope="module")
def app_client(settings: Settings, seeded: list[str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def cleanup(stores: Stores, seeded: list[str]) -> Iterator[None]:
    yield
    with MongoClient(stores.mongodb_url) as mongo:
        for collection in ("corrections", "notifications"):
            mongo[GATEWAY_DATABASE][collection].delete_many({"uscc": {"$in": seeded[40:44]}})


def _init(websocket: Any, headers: dict[str, str]) -> None:
    websocket.send_json(
        {"type": "connection_init", "payload": {"Authorization": headers["authorization"]}}
    )
    assert websocket.receive_json() == {"type": "connection_ack"}


@pytest.mark.parametrize(
    ("role", "claims", "code"),
    [
        ("member", {}, "FORBIDDEN"),
        ("owner", {"enterprise": "other"}, "FORBIDDEN"),
    ],
)
def test_a_subscription_to_another_enterprise_is_refused(
    app_client: TestClient,
    settings: Settings,
    seeded: list[str],
    role: str,
    claims: dict[str, str],
    code: str,
) -> None:
    if claims.get("enterprise") == "other":
        claims = {"enterprise": seeded[43]}
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        _init(socket, bearer(settings, role, **claims))
        socket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": LIVE, "variables": {"u": seeded[42]}},
            }
        )
        message = socket.receive_json()
    assert message["type"] == "error" and message["id"] == "1"
    assert [error["extensions"]["code"] for error in message["payload"]] == [code]


def test_without_a_token_the_subscription_is_unauthenticated(
    app_client: TestClient, seeded: list[str]
) -> None:
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": LIVE, "variables": {"u": seeded[42]}},
            }
        )
        message = socket.receive_json()
    assert [error["extensions"]["code"] for error in message["payload"]] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ({"type": "subscribe", "id": "1", "payload": {"query": LIVE}}, 4401),
        ({"type": "connection_init", "payload": {"Authorization": "Bearer nonsense"}}, 4403),
        ({"hello": "world"}, 4400),
    ],
)
def test_protocol_refusals_close_with_their_codes(
    app_client: TestClient, first: dict[str, Any], code: int
) -> None:
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        socket.send_json(first)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == code


def test_a_second_init_and_a_reused_id_close_the_connection(
    app_client: TestClient, settings: Settings, seeded: list[str]
) -> None:
    headers = bearer(settings, "owner", enterprise=seeded[42])
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        _init(socket, headers)
        socket.send_json({"type": "connection_init"})
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 4429
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        _init(socket, headers)
        subscribe = {
            "id": "x",
            "type": "subscribe",
            "payload": {"query": LIVE, "variables": {"u": seeded[42]}},
        }
        socket.send_json(subscribe)
        socket.send_json(subscribe)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 4409


def test_queries_go_over_http(app_client: TestClient, settings: Settings) -> None:
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        _init(socket, bearer(settings, "member"))
        socket.send_json({"id": "q", "type": "subscribe", "payload": {"query": "{ __typename }"}})
        message = socket.receive_json()
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


def test_binary_frames_carry_the_same_messages(app_client: TestClient, settings: Settings) -> None:
    """graphql-ws's own server takes UTF-8 JSON in binary frames; other bytes close 4400."""
    headers = bearer(settings, "member")
    init = {"type": "connection_init", "payload": {"Authorization": headers["authorization"]}}
    with app_client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as socket:
        socket.send_bytes(orjson.dumps(init))
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_bytes(b"\xff\xfe not json")
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 4400
