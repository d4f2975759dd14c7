"""Live notifications end to end: a real uvicorn server, real WebSocket clients speaking
graphql-transport-ws, and the writes that notify made over real HTTP.

An owner's console hears its own enterprise's correction answer and suspension as they
happen, and never another enterprise's. Live delivery rides on Redis pub/sub, which
keeps nothing for a subscriber not yet listening, so each test waits until Redis counts
the subscription (PUBSUB NUMSUB) before it writes: the protocol has no "subscribed"
acknowledgement to wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from gateway.settings import Settings, Source
from gateway.sources import GATEWAY_DATABASE
from gateway.subscriptions import PROTOCOL
from loaders.base import cache_key
from loaders.writes import notification_channel
from tests.conftest import bearer

#: A guard against a hung test, not a measurement.
PATIENCE_S = 10.0

LIVE = "subscription ($u: USCC!) { notificationAdded(uscc: $u) { kind title body read } }"
REQUEST = """
mutation ($u: USCC!, $v: String!) {
  requestCorrection(uscc: $u, field: "businessScope", proposedValue: $v, explanation: "请更正") {
    correction { id state }
  }
}
"""
RESOLVE = """
mutation ($id: ID!) {
  resolveCorrection(id: $id, accept: false, note: "经核实，登记信息无误") { correction { state } }
}
"""
STATUS = """
mutation ($u: USCC!, $s: ServiceState!, $r: String) {
  setServiceStatus(uscc: $u, state: $s, reason: $r) { serviceStatus { state } }
}
"""


@pytest.fixture
async def http(live_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{live_server}", timeout=PATIENCE_S) as client:
        yield client


async def _write(
    http: httpx.AsyncClient, headers: dict[str, str], query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


async def _subscribe(
    server: str, headers: dict[str, str], uscc: str, redis: Redis
) -> ClientConnection:
    """An owner's console subscribed to ``uscc``'s notifications, once Redis has the
    subscription."""
    websocket = await connect(f"ws://{server}/graphql", subprotocols=[PROTOCOL])
    await websocket.send(
        orjson.dumps(
            {"type": "connection_init", "payload": {"Authorization": headers["authorization"]}}
        )
    )
    assert orjson.loads(await websocket.recv()) == {"type": "connection_ack"}
    await websocket.send(
        orjson.dumps(
            {"id": uscc, "type": "subscribe", "payload": {"query": LIVE, "variables": {"u": uscc}}}
        )
    )
    channel = notification_channel(uscc)
    async with asyncio.timeout(PATIENCE_S):
        while dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:
            await asyncio.sleep(0.01)
    return websocket


async def _next(websocket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(PATIENCE_S):
        message: dict[str, Any] = orjson.loads(await websocket.recv())
    return message


async def test_an_owner_hears_its_correction_answered_and_not_another_enterprises(
    live_server: str,
    http: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    redis: Redis,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    mine, theirs = seeded[44], seeded[45]
    owner = bearer(settings, "owner", enterprise=mine)
    other_owner = bearer(settings, "owner", enterprise=theirs)
    operator = bearer(settings, "operator")
    console = await _subscribe(live_server, owner, mine, redis)
    other_console = await _subscribe(live_server, other_owner, theirs, redis)
    try:
        asked = await _write(http, owner, REQUEST, {"u": mine, "v": "服装批发；网上贸易代理"})
        correction = asked["requestCorrection"]["correction"]
        assert await _next(console) == {
            "id": mine,
            "type": "next",
            "payload": {
                "data": {
                    "notificationAdded": {
                        "kind": "CORRECTION",
                        "title": "Correction request received: businessScope",
                        "body": "We received your request to show '服装批发；网上贸易代理' "
                        "as businessScope; an operator will answer it.",
                        "read": False,
                    }
                }
            },
        }
        answered = await _write(http, operator, RESOLVE, {"id": correction["id"]})
        assert answered == {"resolveCorrection": {"correction": {"state": "REJECTED"}}}
        assert await _next(console) == {
            "id": mine,
            "type": "next",
            "payload": {
                "data": {
                    "notificationAdded": {
                        "kind": "CORRECTION",
                        "title": "Correction rejected: businessScope",
                        "body": "经核实，登记信息无误",
                        "read": False,
                    }
                }
            },
        }
        # The other enterprise's console heard neither: the first message it gets is
        # its own enterprise's, sent after both of the above.
        await _write(http, other_owner, REQUEST, {"u": theirs, "v": "日用百货销售"})
        heard = await _next(other_console)
        assert heard["id"] == theirs
        assert heard["payload"]["data"]["notificationAdded"]["body"] == (
            "We received your request to show '日用百货销售' as businessScope; "
            "an operator will answer it."
        )
    finally:
        await console.close()
        await other_console.close()
        gateway_db = mongo[GATEWAY_DATABASE]
        for collection in ("corrections", "notifications"):
            await gateway_db[collection].delete_many({"uscc": {"$in": [mine, theirs]}})


async def test_an_owner_sees_a_suspension_as_it_happens(
    live_server: str,
    http: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    redis: Redis,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    statuses = mongo["integrity"]["service_status"]
    # The last enterprises: no other module suspends them.
    active = await statuses.find_one({"_id": {"$in": seeded[-15:]}, "status": "ACTIVE"})
    assert active is not None
    uscc = active["_id"]
    owner = bearer(settings, "owner", enterprise=uscc)
    console = await _subscribe(live_server, owner, uscc, redis)
    try:
        changed = await _write(
            http,
            bearer(settings, "operator"),
            STATUS,
            {"u": uscc, "s": "SUSPENDED", "r": "涉嫌虚假宣传，暂停服务待核查"},
        )
        assert changed == {"setServiceStatus": {"serviceStatus": {"state": "SUSPENDED"}}}
        assert await _next(console) == {
            "id": uscc,
            "type": "next",
            "payload": {
                "data": {
                    "notificationAdded": {
                        "kind": "STATUS",
                        "title": "Integrity service suspended",
                        "body": "涉嫌虚假宣传，暂停服务待核查",
                        "read": False,
                    }
                }
            },
        }
    finally:
        await console.close()
        await statuses.replace_one({"_id": uscc}, active)
        await mongo[GATEWAY_DATABASE]["notifications"].delete_many({"uscc": uscc})
        await redis.delete(cache_key(Source.INTEGRITY, "service_status", "_id", uscc))


async def test_an_operator_following_an_enterprise_is_on_its_trail(
    live_server: str,
    http: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    redis: Redis,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    """Each event an operator hears is a sensitive read, recorded before it is sent."""
    uscc = seeded[-8]
    owner = bearer(settings, "owner", enterprise=uscc)
    console = await _subscribe(
        live_server, bearer(settings, "operator", subject="staff-5"), uscc, redis
    )
    try:
        await _write(http, owner, REQUEST, {"u": uscc, "v": "软件开发；信息技术咨询服务"})
        heard = await _next(console)
    finally:
        await console.close()
        for collection in ("corrections", "notifications"):
            await mongo[GATEWAY_DATABASE][collection].delete_many({"uscc": uscc})
    assert heard["payload"]["data"]["notificationAdded"]["kind"] == "CORRECTION"
    records = (
        await mongo["audit"]["records"]
        .find({"enterprise": uscc, "viewer.subject": "staff-5"})
        .to_list(None)
    )
    assert [(r["action"], r["fields"], r["purpose"]) for r in records] == [
        (
            "read",
            ["Notification.body", "Notification.kind", "Notification.read", "Notification.title"],
            ["operator"],
        )
    ]
