"""The audit trail: in the graph as an enterprise's accessLog, written before any
sensitive value leaves (withheld when it cannot be), append-only and kept for its
retention; lawful disclosures on it, told to the enterprise at once or when the law's
deferral ends.

Each test works on an enterprise of its own (the last of the seed), so its trail holds
only what the test did.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from gateway.settings import Settings
from gateway.sources import GATEWAY_DATABASE, Sources
from loaders import writes
from loaders.audit import RECORDS, SPOOL, drain_spool
from tests.conftest import bearer, codes, graphql_as, serving
from tests.test_writes import UNKNOWN

SENSITIVE = """
query ($u: USCC!) {
  enterprise(uscc: $u) {
    name
    legalRepresentative { name maskedIdNumber }
    identityAuthentication { verified method evidenceReference }
  }
}
"""
LOG = """
query ($u: USCC!, $f: AccessLogFilter, $first: Int! = 10, $after: String) {
  enterprise(uscc: $u) {
    accessLog(first: $first, after: $after, filter: $f) {
      edges { node {
        kind viewerKind clientId platform fields purpose outcome
        authority legalBasis referenceNumber noticeDeferredUntil
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
DISCLOSE = """
mutation ($u: USCC!, $fields: [String!]!, $until: DateTime, $c: String) {
  recordDisclosure(
    uscc: $u, authority: "杭州市公安局上城区分局",
    legalBasis: "《中华人民共和国刑事诉讼法》第五十四条",
    referenceNumber: "杭上公（刑）调证字〔2026〕118号", fields: $fields,
    noticeDeferredUntil: $until, clientMutationId: $c
  ) { replayed disclosure { kind authority fields noticeDeferredUntil } }
}
"""


def _log(body: dict[str, Any]) -> list[dict[str, Any]]:
    log = body["data"]["enterprise"]["accessLog"]
    return [edge["node"] for edge in log["edges"]]


async def test_the_owner_reads_who_read_it_and_operators_filter_it(
    client: httpx.AsyncClient, settings: Settings, seeded: list[str]
) -> None:
    uscc = seeded[-1]
    owner = bearer(settings, "owner", enterprise=uscc)
    operator = bearer(settings, "operator", subject="staff-12")
    partner = bearer(
        settings, "service", scopes=["identity:read"], platform="taobao", subject="tb-risk"
    )
    await graphql_as(client, operator, SENSITIVE, {"u": uscc})
    read = await graphql_as(client, partner, SENSITIVE, {"u": uscc})
    assert read["data"]["enterprise"]["identityAuthentication"] is not None
    await graphql_as(client, owner, SENSITIVE, {"u": uscc})  # its own reads: not on it

    trail = _log(await graphql_as(client, owner, LOG, {"u": uscc}))
    assert [(r["viewerKind"], r["clientId"], r["platform"]) for r in trail] == [
        ("service", "tb-risk", "taobao"),
        ("operator", None, None),  # a person: never named to the enterprise
    ]
    assert trail[0]["fields"] == [
        "IdentityAuthentication.evidenceReference",
        "IdentityAuthentication.method",
    ]
    assert trail[0]["purpose"] == ["identity:read"]
    assert trail[1]["fields"] == [
        "IdentityAuthentication.evidenceReference",
        "IdentityAuthentication.method",
        "LegalRepresentative.maskedIdNumber",
    ]
    assert trail[1]["purpose"] == ["operator"]
    assert {r["kind"] for r in trail} == {"READ"}

    by_field = await graphql_as(
        client, operator, LOG, {"u": uscc, "f": {"field": "LegalRepresentative.maskedIdNumber"}}
    )
    assert [r["viewerKind"] for r in _log(by_field)] == ["operator"]
    by_client = await graphql_as(client, operator, LOG, {"u": uscc, "f": {"clientId": "tb-risk"}})
    assert [r["clientId"] for r in _log(by_client)] == ["tb-risk"]
    by_kind = await graphql_as(client, operator, LOG, {"u": uscc, "f": {"viewerKind": "SERVICE"}})
    assert [r["viewerKind"] for r in _log(by_kind)] == ["service"]

    page = await graphql_as(client, owner, LOG, {"u": uscc, "first": 1})
    after = page["data"]["enterprise"]["accessLog"]["pageInfo"]
    assert after["hasNextPage"] is True
    rest = await graphql_as(client, owner, LOG, {"u": uscc, "after": after["endCursor"]})
    assert [r["viewerKind"] for r in _log(rest)] == ["operator"]
    # Reading the trail is not itself on the trail.
    again = _log(await graphql_as(client, owner, LOG, {"u": uscc}))
    assert len(again) == 2


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"role": "member"}, "FORBIDDEN"),
        ({"role": "owner", "enterprise": "other"}, "FORBIDDEN"),
        ({"role": "service", "scopes": ["identity:read", "risk:read"]}, "FORBIDDEN"),
    ],
)
async def test_nobody_else_reads_the_trail(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    claims: dict[str, Any],
    code: str,
) -> None:
    if claims.get("enterprise") == "other":
        claims = {**claims, "enterprise": seeded[0]}
    headers = bearer(settings, **claims) if claims else {}
    body = await graphql_as(client, headers, LOG, {"u": seeded[-1]})
    assert body["data"] == {"enterprise": {"accessLog": None}}
    assert codes(body) == [code]


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"field": "maskedIdNumber"}, "filter.field: 'maskedIdNumber' is not a field of this API"),
        ({"field": "Enterprise.nothing"}, "'Enterprise.nothing' is not a field of this API"),
        ({"clientId": ""}, "filter.clientId must be 1 to 200 characters"),
    ],
)
async def test_a_bad_filter_is_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    filter: dict[str, str],
    message: str,
) -> None:
    body = await graphql_as(
        client, bearer(settings, "operator"), LOG, {"u": seeded[-1], "f": filter}
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert message in body["errors"][0]["message"]


async def test_with_the_trail_down_sensitive_fields_are_withheld_and_the_rest_served(
    settings: Settings,
    seeded: list[str],
    silent_server: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[-2]
    down = settings.model_copy(update={"audit_mongodb_url": silent_server, "audit_timeout_ms": 300})
    async with serving(down) as client:
        body = await _post(client, bearer(settings, "operator"), SENSITIVE, uscc)
        owner = await _post(client, bearer(settings, "owner", enterprise=uscc), SENSITIVE, uscc)
    enterprise = body["data"]["enterprise"]
    assert enterprise["name"] == owner["data"]["enterprise"]["name"]
    assert enterprise["legalRepresentative"] == {
        "name": owner["data"]["enterprise"]["legalRepresentative"]["name"],
        "maskedIdNumber": None,
    }
    assert enterprise["identityAuthentication"]["verified"] is not None
    assert enterprise["identityAuthentication"]["method"] is None
    assert enterprise["identityAuthentication"]["evidenceReference"] is None
    assert sorted((e["path"][-1], e["extensions"]["code"]) for e in body["errors"]) == [
        ("evidenceReference", "AUDIT_UNAVAILABLE"),
        ("maskedIdNumber", "AUDIT_UNAVAILABLE"),
        ("method", "AUDIT_UNAVAILABLE"),
    ]
    # The owner's own reads need no record: served whole.
    assert "errors" not in owner
    assert owner["data"]["enterprise"]["legalRepresentative"]["maskedIdNumber"] is not None
    # Nothing was served, so nothing is on the trail.
    assert await mongo["audit"][RECORDS].count_documents({"request_id": "audit-down-1"}) == 0


async def _post(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, uscc: str
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"u": uscc}},
        headers=headers | {"x-request-id": "audit-down-1"},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    body.pop("extensions", None)
    return body


async def test_a_write_with_the_trail_down_is_spooled_and_reaches_it_once_back(
    settings: Settings,
    seeded: list[str],
    silent_server: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[-3]
    down = settings.model_copy(
        update={"audit_mongodb_url": silent_server, "mongodb_timeout_ms": 300}
    )
    gateway_db = mongo[GATEWAY_DATABASE]
    async with serving(down) as client:
        body = await graphql_as(
            client,
            bearer(settings, "operator", subject="staff-3"),
            DISCLOSE,
            {"u": uscc, "fields": ["Enterprise.registeredAddress"], "c": "spool-1"},
        )
    assert body["data"]["recordDisclosure"]["disclosure"]["kind"] == "DISCLOSURE"
    spooled = await gateway_db[SPOOL].find({"enterprise": uscc}).to_list(None)
    assert [(r["action"], r["viewer"]["subject"]) for r in spooled] == [("disclosure", "staff-3")]
    assert await mongo["audit"][RECORDS].count_documents({"_id": spooled[0]["_id"]}) == 0

    back = Sources.from_settings(settings, None)
    try:
        assert await drain_spool(back) == 1
        assert await drain_spool(back) == 0
    finally:
        await back.close()
    assert await gateway_db[SPOOL].count_documents({}) == 0
    stored = await mongo["audit"][RECORDS].find_one({"_id": spooled[0]["_id"]})
    assert stored == spooled[0]


async def test_a_disclosure_is_told_at_once_or_when_its_deferral_ends(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[-4]
    owner = bearer(settings, "owner", enterprise=uscc)
    operator = bearer(settings, "operator")
    notices = "query($u: USCC!){enterprise(uscc:$u){notifications{edges{node{kind title body}}}}}"
    now = dt.datetime.now(dt.UTC)
    until = (now + dt.timedelta(days=30)).replace(microsecond=0)

    told = await graphql_as(
        client, operator, DISCLOSE, {"u": uscc, "fields": ["LegalRepresentative.maskedIdNumber"]}
    )
    assert told["data"]["recordDisclosure"] == {
        "replayed": False,
        "disclosure": {
            "kind": "DISCLOSURE",
            "authority": "杭州市公安局上城区分局",
            "fields": ["LegalRepresentative.maskedIdNumber"],
            "noticeDeferredUntil": None,
        },
    }
    deferred = await graphql_as(
        client,
        operator,
        DISCLOSE,
        {"u": uscc, "fields": ["Enterprise.registeredAddress"], "until": until.isoformat()},
    )
    assert deferred["data"]["recordDisclosure"]["disclosure"]["noticeDeferredUntil"] == (
        until.isoformat()
    )

    seen = _log(await graphql_as(client, owner, LOG, {"u": uscc}))
    assert [(r["kind"], r["fields"]) for r in seen] == [
        ("DISCLOSURE", ["LegalRepresentative.maskedIdNumber"])
    ]
    assert seen[0]["legalBasis"] == "《中华人民共和国刑事诉讼法》第五十四条"
    assert seen[0]["referenceNumber"] == "杭上公（刑）调证字〔2026〕118号"
    assert seen[0]["purpose"] == ["《中华人民共和国刑事诉讼法》第五十四条"]
    titles = [
        e["node"]["title"]
        for e in (await graphql_as(client, owner, notices, {"u": uscc}))["data"]["enterprise"][
            "notifications"
        ]["edges"]
    ]
    assert titles == ["Information disclosed to 杭州市公安局上城区分局"]
    # Operators see the deferred one already.
    everything = _log(await graphql_as(client, operator, LOG, {"u": uscc}))
    assert [r["noticeDeferredUntil"] for r in everything] == [until.isoformat(), None]

    # The deferral ends: the next upkeep round tells the enterprise, once.
    sources = Sources.from_settings(settings, None)
    runtime_cache = client._transport.app.state.runtime.cache  # type: ignore[attr-defined]
    try:
        later = until + dt.timedelta(seconds=1)
        assert await writes.release_deferred_notices(sources, runtime_cache, now=later) == 1
        assert await writes.release_deferred_notices(sources, runtime_cache, now=later) == 0
    finally:
        await sources.close()
    body = (await graphql_as(client, owner, notices, {"u": uscc}))["data"]["enterprise"]
    assert [e["node"]["kind"] for e in body["notifications"]["edges"]] == [
        "DISCLOSURE",
        "DISCLOSURE",
    ]
    assert "registeredAddress" in body["notifications"]["edges"][0]["node"]["body"]
    await mongo[GATEWAY_DATABASE]["notifications"].delete_many({"uscc": uscc})


@pytest.mark.parametrize(
    ("variables", "code", "message"),
    [
        ({"fields": []}, "BAD_USER_INPUT", "fields names 1 to 50 fields"),
        ({"fields": ["registeredAddress"]}, "BAD_USER_INPUT", "is not a field of this API"),
        (
            {"fields": ["Enterprise.name"], "until": "2020-01-01T00:00:00+00:00"},
            "BAD_USER_INPUT",
            "noticeDeferredUntil must be in the future",
        ),
        ({"fields": ["Enterprise.name"], "u": UNKNOWN}, "NOT_FOUND", "No enterprise"),
    ],
)
async def test_a_bad_disclosure_is_refused_and_nothing_recorded(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    variables: dict[str, Any],
    code: str,
    message: str,
) -> None:
    before = await mongo["audit"][RECORDS].count_documents({"action": "disclosure"})
    body = await graphql_as(
        client, bearer(settings, "operator"), DISCLOSE, {"u": seeded[-5], **variables}
    )
    assert codes(body) == [code]
    assert message in body["errors"][0]["message"]
    assert await mongo["audit"][RECORDS].count_documents({"action": "disclosure"}) == before


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"role": "member"}, "FORBIDDEN"),
        ({"role": "owner", "enterprise": "self"}, "FORBIDDEN"),
        ({"role": "service", "scopes": ["identity:read", "corrections:resolve"]}, "FORBIDDEN"),
    ],
)
async def test_only_operators_record_disclosures(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    claims: dict[str, Any],
    code: str,
) -> None:
    if claims.get("enterprise") == "self":
        claims = {**claims, "enterprise": seeded[-5]}
    headers = bearer(settings, **claims) if claims else {}
    body = await graphql_as(
        client, headers, DISCLOSE, {"u": seeded[-5], "fields": ["Enterprise.name"]}
    )
    assert body["data"] == {"recordDisclosure": None}
    assert codes(body) == [code]


async def test_the_trail_is_kept_for_its_retention(
    client: httpx.AsyncClient, mongo: AsyncMongoClient[dict[str, Any]], settings: Settings
) -> None:
    indexes = await mongo["audit"][RECORDS].index_information()
    assert indexes["retention"]["expireAfterSeconds"] == settings.audit_retention_days * 86_400
    assert settings.audit_retention_days == 1_095
    assert {"enterprise_newest", "enterprise_viewer_newest", "enterprise_field_newest"} <= set(
        indexes
    )


def test_no_code_updates_or_deletes_a_record() -> None:
    """Append-only: the trail's collection is only ever inserted into and read."""
    root = Path(__file__).resolve().parents[1]
    touching = []
    for package in ("gateway", "loaders", "resolvers"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Subscript)
                    and ast.unparse(node.func.value.slice) in ("RECORDS", "audit.RECORDS")
                ):
                    touching.append(node.func.attr)
    assert sorted(set(touching)) == ["find", "insert_many"]


async def test_each_replica_drains_the_spool_on_its_own(
    settings: Settings, seeded: list[str], mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    spooled = {
        "_id": ObjectId(),
        "viewer": {"kind": "operator", "subject": "staff-9", "platform": None},
        "request_id": "spooled-1",
        "at": writes.stored_now(),
        "enterprise": seeded[-6],
        "action": "setServiceStatus",
        "before": None,
        "after": {"status": "ACTIVE"},
    }
    await mongo[GATEWAY_DATABASE][SPOOL].insert_one(spooled)
    ticking = settings.model_copy(update={"upkeep_interval_seconds": 0.05})
    async with serving(ticking):
        for _ in range(200):
            if await mongo[GATEWAY_DATABASE][SPOOL].count_documents({}) == 0:
                break
            await asyncio.sleep(0.05)
    assert await mongo[GATEWAY_DATABASE][SPOOL].count_documents({}) == 0
    assert await mongo["audit"][RECORDS].find_one({"_id": spooled["_id"]}) == spooled


async def test_records_from_before_deferrals_are_shown(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[-7]
    await mongo["audit"][RECORDS].insert_one(
        {
            "viewer": {"kind": "service", "subject": "old-client", "platform": None},
            "request_id": "legacy-1",
            "at": writes.stored_now(),
            "enterprise": uscc,
            "action": "read",
            "fields": ["LegalRepresentative.maskedIdNumber"],
        }
    )
    seen = _log(
        await graphql_as(client, bearer(settings, "owner", enterprise=uscc), LOG, {"u": uscc})
    )
    assert [(r["clientId"], r["fields"], r["purpose"]) for r in seen] == [
        ("old-client", ["LegalRepresentative.maskedIdNumber"], [])
    ]


async def test_a_client_id_with_another_viewer_kind_matches_nothing(
    client: httpx.AsyncClient, settings: Settings, seeded: list[str]
) -> None:
    uscc = seeded[-9]
    partner = bearer(settings, "service", scopes=["identity:read"], subject="tb-audit")
    await graphql_as(client, partner, SENSITIVE, {"u": uscc})
    operator = bearer(settings, "operator")
    both = {"clientId": "tb-audit", "viewerKind": "OPERATOR"}
    assert _log(await graphql_as(client, operator, LOG, {"u": uscc, "f": both})) == []
    agreeing = {"clientId": "tb-audit", "viewerKind": "SERVICE"}
    found = _log(await graphql_as(client, operator, LOG, {"u": uscc, "f": agreeing}))
    assert [(r["viewerKind"], r["clientId"]) for r in found] == [("service", "tb-audit")]
