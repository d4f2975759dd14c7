"""The write side: corrections, service status and notifications, per viewer kind, with
bad input refused before anything is written and retries answered once.

Each test puts back the source documents it changed (and evicts them), so the archive
stays as seeded for the modules after it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from gateway.settings import Settings, Source
from gateway.sources import GATEWAY_DATABASE
from loaders import writes
from loaders.base import cache_key
from loaders.codes import uscc_check_chars
from tests.conftest import bearer, codes, graphql_as

#: Valid check characters, but no enterprise has it.
UNKNOWN = "91330106MA2KXXXX" + uscc_check_chars("91330106MA2KXXXX")

REQUEST = """
mutation ($u: USCC!, $f: String!, $v: String!, $e: String!, $c: String) {
  requestCorrection(uscc: $u, field: $f, proposedValue: $v, explanation: $e,
                    clientMutationId: $c) {
    clientMutationId replayed
    correction { id field proposedValue previousValue explanation state note }
  }
}
"""
RESOLVE = """
mutation ($id: ID!, $a: Boolean!, $n: String!) {
  resolveCorrection(id: $id, accept: $a, note: $n) {
    replayed correction { id state note resolvedAt }
  }
}
"""
STATUS = """
mutation ($u: USCC!, $s: ServiceState!, $r: String, $c: String) {
  setServiceStatus(uscc: $u, state: $s, reason: $r, clientMutationId: $c) {
    replayed serviceStatus { state reason since }
  }
}
"""
MARK = """
mutation ($u: USCC!, $ids: [ID!]) {
  markNotificationsRead(uscc: $u, ids: $ids) { marked unreadCount }
}
"""
NOTICES = """
query ($u: USCC!) {
  enterprise(uscc: $u) {
    notifications(first: 50) { unreadCount edges { node { id kind title body read } } }
    correctionRequests(first: 50) { edges { node { id field state } } }
  }
}
"""


def owner(settings: Settings, uscc: str) -> dict[str, str]:
    return bearer(settings, "owner", enterprise=uscc)


def operator(settings: Settings) -> dict[str, str]:
    return bearer(settings, "operator")


async def restore(
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
    source: Source,
    collection: str,
    original: dict[str, Any],
) -> None:
    """Put a seeded document back as it was, and drop what the cache holds of it."""
    await mongo[source.value][collection].replace_one({"_id": original["_id"]}, original)
    await redis.delete(cache_key(source, collection, "_id", original["_id"]))


async def forget_write_side(mongo: AsyncMongoClient[dict[str, Any]], uscc: str) -> None:
    database = mongo[GATEWAY_DATABASE]
    await database["corrections"].delete_many({"uscc": uscc})
    await database["notifications"].delete_many({"uscc": uscc})


async def test_an_owner_requests_a_correction_and_an_operator_accepts_it(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
) -> None:
    uscc = seeded[21]
    original = await mongo["registry"]["enterprises"].find_one({"_id": uscc})
    assert original is not None
    address = "query($u: USCC!){enterprise(uscc:$u){registeredAddress}}"
    shown = await graphql_as(client, {}, address, {"u": uscc})  # cached now
    assert shown["data"]["enterprise"]["registeredAddress"] == original["address"]
    try:
        body = await graphql_as(
            client,
            owner(settings, uscc),
            REQUEST,
            {
                "u": uscc,
                "f": "registeredAddress",
                "v": " 杭州市西湖区文三路 1 号 ",
                "e": "门牌号有误",
            },
        )
        assert "errors" not in body
        payload = body["data"]["requestCorrection"]
        correction = payload["correction"]
        assert payload["replayed"] is False and payload["clientMutationId"] is None
        assert {k: v for k, v in correction.items() if k != "id"} == {
            "field": "registeredAddress",
            "proposedValue": "杭州市西湖区文三路 1 号",
            "previousValue": original["address"],
            "explanation": "门牌号有误",
            "state": "OPEN",
            "note": None,
        }
        records = mongo["audit"]["records"]
        audited = await records.find_one({"action": "requestCorrection", "enterprise": uscc})
        assert audited is not None
        assert audited["viewer"]["kind"] == "owner" and audited["before"] is None
        assert audited["after"] == {
            "correction": correction["id"],
            "field": "registeredAddress",
            "proposed": "杭州市西湖区文三路 1 号",
        }

        accepted = await graphql_as(
            client, operator(settings), RESOLVE, {"id": correction["id"], "a": True, "n": "已核实"}
        )
        assert "errors" not in accepted
        outcome = accepted["data"]["resolveCorrection"]["correction"]
        assert outcome["state"] == "ACCEPTED" and outcome["note"] == "已核实"
        assert outcome["resolvedAt"] is not None
        # At once, although the old address was cached: the write evicted it.
        shown = await graphql_as(client, {}, address, {"u": uscc})
        assert shown["data"]["enterprise"]["registeredAddress"] == "杭州市西湖区文三路 1 号"
        stored = await mongo["registry"]["enterprises"].find_one({"_id": uscc})
        assert stored is not None and stored["address"] == "杭州市西湖区文三路 1 号"
        resolved = await records.find_one({"action": "resolveCorrection", "enterprise": uscc})
        assert resolved is not None
        assert resolved["before"] == {
            "field": "registeredAddress",
            "value": original["address"],
            "state": "OPEN",
        }
        assert resolved["after"]["state"] == "ACCEPTED"
        assert resolved["request_id"] != audited["request_id"]

        again = await graphql_as(
            client, operator(settings), RESOLVE, {"id": correction["id"], "a": False, "n": "再议"}
        )
        assert again["data"]["resolveCorrection"] is None
        assert codes(again) == ["ALREADY_RESOLVED"]

        notices = await graphql_as(client, owner(settings, uscc), NOTICES, {"u": uscc})
        enterprise = notices["data"]["enterprise"]
        assert "errors" not in notices, notices
        titles = [edge["node"]["title"] for edge in enterprise["notifications"]["edges"]]
        assert titles == [
            "Correction accepted: registeredAddress",
            "Correction request received: registeredAddress",
        ]
        assert enterprise["notifications"]["unreadCount"] == 2
        assert [edge["node"]["state"] for edge in enterprise["correctionRequests"]["edges"]] == [
            "ACCEPTED"
        ]
    finally:
        await restore(mongo, redis, Source.REGISTRY, "enterprises", original)
        await forget_write_side(mongo, uscc)


@pytest.mark.parametrize(
    ("viewer", "code"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"role": "member"}, "FORBIDDEN"),
        ({"role": "owner", "enterprise": "other"}, "FORBIDDEN"),
        ({"role": "service", "scopes": ["risk:read"]}, "FORBIDDEN"),
    ],
)
async def test_who_may_not_request_a_correction(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    viewer: dict[str, Any],
    code: str,
) -> None:
    uscc = seeded[22]
    if viewer.get("enterprise") == "other":
        viewer = {**viewer, "enterprise": seeded[23]}
    headers = bearer(settings, **viewer) if viewer else {}
    body = await graphql_as(
        client, headers, REQUEST, {"u": uscc, "f": "name", "v": "新名称有限公司", "e": "错字"}
    )
    assert body["data"] == {"requestCorrection": None}
    assert codes(body) == [code]
    assert await mongo[GATEWAY_DATABASE]["corrections"].count_documents({"uscc": uscc}) == 0


async def test_a_service_client_with_the_scope_requests_and_resolves(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[24]
    requester = bearer(settings, "service", scopes=["corrections:request"])
    resolver = bearer(settings, "service", scopes=["corrections:resolve"])
    try:
        body = await graphql_as(
            client,
            requester,
            REQUEST,
            {"u": uscc, "f": "name", "v": "新名称有限公司", "e": "平台转交"},
        )
        correction = body["data"]["requestCorrection"]["correction"]
        assert correction["state"] == "OPEN"
        denied = await graphql_as(
            client, requester, RESOLVE, {"id": correction["id"], "a": False, "n": "不予更正"}
        )
        assert codes(denied) == ["FORBIDDEN"]
        rejected = await graphql_as(
            client, resolver, RESOLVE, {"id": correction["id"], "a": False, "n": "不予更正"}
        )
        assert rejected["data"]["resolveCorrection"]["correction"]["state"] == "REJECTED"
    finally:
        await forget_write_side(mongo, uscc)


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"u": UNKNOWN}, "NOT_FOUND"),
        ({"f": "uscc"}, "FIELD_NOT_CORRECTABLE"),
        ({"f": "status"}, "FIELD_NOT_CORRECTABLE"),
        ({"e": "   "}, "BAD_USER_INPUT"),
        ({"e": "长" * 1001}, "BAD_USER_INPUT"),
        ({"v": ""}, "BAD_USER_INPUT"),
        ({"f": "establishedOn", "v": "2031-02-30"}, "BAD_USER_INPUT"),
        ({"c": "not a valid id!"}, "BAD_USER_INPUT"),
    ],
)
async def test_bad_correction_input_is_refused_and_nothing_written(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    variables: dict[str, Any],
    code: str,
) -> None:
    uscc = variables.get("u", seeded[25])
    asked = {"u": uscc, "f": "name", "v": "某某有限公司", "e": "错字", **variables}
    body = await graphql_as(client, owner(settings, uscc), REQUEST, asked)
    assert body["data"] == {"requestCorrection": None}
    assert codes(body) == [code]
    database = mongo[GATEWAY_DATABASE]
    assert await database["corrections"].count_documents({"uscc": uscc}) == 0
    assert await database["notifications"].count_documents({"uscc": uscc}) == 0


async def test_a_retried_correction_is_answered_once(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[26]
    headers = owner(settings, uscc)
    asked = {"u": uscc, "f": "businessScope", "v": "软件开发。", "e": "范围有误", "c": "retry-1"}
    try:
        first = await graphql_as(client, headers, REQUEST, asked)
        second = await graphql_as(client, headers, REQUEST, asked)
        assert first["data"]["requestCorrection"]["replayed"] is False
        assert second["data"]["requestCorrection"]["replayed"] is True
        assert (
            second["data"]["requestCorrection"]["correction"]
            == first["data"]["requestCorrection"]["correction"]
        )
        assert second["data"]["requestCorrection"]["clientMutationId"] == "retry-1"
        reused = await graphql_as(client, headers, REQUEST, {**asked, "v": "别的范围。"})
        assert codes(reused) == ["CLIENT_MUTATION_ID_REUSED"]
        database = mongo[GATEWAY_DATABASE]
        assert await database["corrections"].count_documents({"uscc": uscc}) == 1
        assert await database["notifications"].count_documents({"uscc": uscc}) == 1
        # Another client's id of the same name is its own.
        other = await graphql_as(client, bearer(settings, "operator"), REQUEST, asked)
        assert other["data"]["requestCorrection"]["replayed"] is False
        assert await database["corrections"].count_documents({"uscc": uscc}) == 2
    finally:
        await forget_write_side(mongo, uscc)


async def test_a_suspension_withholds_the_grade_everywhere_at_once(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
) -> None:
    statuses = mongo["integrity"]["service_status"]
    active = [doc async for doc in statuses.find({"_id": {"$in": seeded[27:]}, "status": "ACTIVE"})]
    original = active[0]
    uscc = original["_id"]
    await forget_write_side(mongo, uscc)  # what other modules' changes told it
    started = writes.stored_now()
    member = bearer(settings, "member")
    seen = """
    query ($u: USCC!, $us: [String!]!) {
      enterprise(uscc: $u) { integrityLevel { grade } serviceStatus { state } }
      integrityBadges(usccs: $us) { grade serviceState }
    }
    """
    before = await graphql_as(client, member, seen, {"u": uscc, "us": [uscc]})  # all of it cached
    assert before["data"]["integrityBadges"][0]["serviceState"] == "ACTIVE"
    assert before["data"]["integrityBadges"][0]["grade"] is not None
    try:
        denied = await graphql_as(
            client, member, STATUS, {"u": uscc, "s": "SUSPENDED", "r": "核查中"}
        )
        assert codes(denied) == ["FORBIDDEN"]
        body = await graphql_as(
            client, operator(settings), STATUS, {"u": uscc, "s": "SUSPENDED", "r": "核查中"}
        )
        since = body["data"]["setServiceStatus"]["serviceStatus"].pop("since")
        assert body["data"]["setServiceStatus"] == {
            "replayed": False,
            "serviceStatus": {"state": "SUSPENDED", "reason": "核查中"},
        }
        reread = await graphql_as(
            client,
            member,
            "query($u: USCC!){enterprise(uscc:$u){serviceStatus{since}}}",
            {"u": uscc},
        )
        # What the write answered is what a read shows (BSON keeps milliseconds).
        assert reread["data"]["enterprise"]["serviceStatus"]["since"] == since
        after = await graphql_as(client, member, seen, {"u": uscc, "us": [uscc]})
        assert after["data"]["enterprise"] == {
            "integrityLevel": None,
            "serviceStatus": {"state": "SUSPENDED"},
        }
        assert after["data"]["integrityBadges"] == [{"grade": None, "serviceState": "SUSPENDED"}]
        assert codes(after) == ["SERVICE_SUSPENDED", "SERVICE_SUSPENDED"]

        missing_reason = await graphql_as(
            client, operator(settings), STATUS, {"u": uscc, "s": "TERMINATED"}
        )
        assert codes(missing_reason) == ["BAD_USER_INPUT"]
        service = bearer(settings, "service", scopes=["service-status:write"])
        ended = await graphql_as(
            client, service, STATUS, {"u": uscc, "s": "TERMINATED", "r": "协议终止"}
        )
        assert ended["data"]["setServiceStatus"]["serviceStatus"]["state"] == "TERMINATED"
        for state in ("SUSPENDED", "ACTIVE"):
            refused = await graphql_as(
                client, operator(settings), STATUS, {"u": uscc, "s": state, "r": "恢复"}
            )
            assert codes(refused) == ["TRANSITION_NOT_ALLOWED"]
        stored = await statuses.find_one({"_id": uscc})
        assert stored is not None and stored["status"] == "TERMINATED"
        assert stored["set_by"]["kind"] == "service"

        notices = await graphql_as(client, owner(settings, uscc), NOTICES, {"u": uscc})
        kinds = [e["node"]["kind"] for e in notices["data"]["enterprise"]["notifications"]["edges"]]
        assert kinds == ["STATUS", "STATUS"]
        audited = (
            mongo["audit"]["records"]
            .find({"action": "setServiceStatus", "enterprise": uscc, "at": {"$gte": started}})
            .sort("at", 1)
        )
        moves = [(r["before"]["status"], r["after"]["status"]) async for r in audited]
        assert moves == [("ACTIVE", "SUSPENDED"), ("SUSPENDED", "TERMINATED")]
    finally:
        await restore(mongo, redis, Source.INTEGRITY, "service_status", original)
        await forget_write_side(mongo, uscc)


async def test_setting_an_unknown_enterprise_or_the_same_state_is_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    unknown = await graphql_as(
        client, operator(settings), STATUS, {"u": UNKNOWN, "s": "SUSPENDED", "r": "x"}
    )
    assert codes(unknown) == ["NOT_FOUND"]
    anonymous = await graphql_as(client, {}, STATUS, {"u": seeded[0], "s": "SUSPENDED", "r": "x"})
    assert codes(anonymous) == ["UNAUTHENTICATED"]
    statuses = mongo["integrity"]["service_status"]
    active = await statuses.find_one({"_id": {"$in": seeded}, "status": "ACTIVE"})
    assert active is not None
    again = await graphql_as(
        client, operator(settings), STATUS, {"u": active["_id"], "s": "ACTIVE", "c": "same-1"}
    )
    assert codes(again) == ["TRANSITION_NOT_ALLOWED"]
    assert again["errors"][0]["message"] == "The service cannot move from ACTIVE to ACTIVE."
    assert await statuses.find_one({"_id": active["_id"]}) == active
    assert (
        await mongo[GATEWAY_DATABASE]["mutations"].count_documents({"_id": {"$regex": "same-1"}})
        == 0
    )


async def test_an_owner_reads_and_marks_its_notifications(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[30]
    headers = owner(settings, uscc)
    try:
        for field, value in (
            ("name", "甲有限公司"),
            ("businessScope", "乙。"),
            ("name", "丙有限公司"),
        ):
            await graphql_as(
                client, headers, REQUEST, {"u": uscc, "f": field, "v": value, "e": "请更正"}
            )
        listed = await graphql_as(client, headers, NOTICES, {"u": uscc})
        page = listed["data"]["enterprise"]["notifications"]
        assert page["unreadCount"] == 3
        newest = page["edges"][0]["node"]
        assert newest["kind"] == "CORRECTION" and newest["read"] is False

        one = await graphql_as(client, headers, MARK, {"u": uscc, "ids": [newest["id"]]})
        assert one["data"]["markNotificationsRead"] == {"marked": 1, "unreadCount": 2}
        operator_marks = await graphql_as(client, operator(settings), MARK, {"u": uscc})
        assert codes(operator_marks) == ["FORBIDDEN"]
        other = await graphql_as(client, owner(settings, seeded[31]), MARK, {"u": uscc})
        assert codes(other) == ["FORBIDDEN"]
        bad = await graphql_as(client, headers, MARK, {"u": uscc, "ids": ["nope"]})
        assert codes(bad) == ["BAD_USER_INPUT"]
        rest = await graphql_as(client, headers, MARK, {"u": uscc})
        assert rest["data"]["markNotificationsRead"] == {"marked": 2, "unreadCount": 0}

        paged = await graphql_as(
            client,
            headers,
            """query ($u: USCC!, $a: String) { enterprise(uscc: $u) {
                 notifications(first: 2, after: $a) {
                   pageInfo { hasNextPage endCursor } edges { node { title read } } } } }""",
            {"u": uscc, "a": None},
        )
        first_page = paged["data"]["enterprise"]["notifications"]
        assert first_page["pageInfo"]["hasNextPage"] is True
        assert [e["node"]["read"] for e in first_page["edges"]] == [True, True]
        member = await graphql_as(client, bearer(settings, "member"), NOTICES, {"u": uscc})
        assert member["data"]["enterprise"] == {"notifications": None, "correctionRequests": None}
        assert codes(member) == ["FORBIDDEN", "FORBIDDEN"]
    finally:
        await forget_write_side(mongo, uscc)


async def test_mutations_are_not_sent_over_get(
    client: httpx.AsyncClient, seeded: list[str]
) -> None:
    query = 'mutation { markNotificationsRead(uscc: "USCC") { marked } }'
    response = await client.get("/graphql", params={"query": query.replace("USCC", seeded[0])})
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
