"""The non-public archive in use: withheld levels, the masked ID, verification, the audit log,
and the raw ID number never leaving the gateway."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.embedded import free_port
from gateway.settings import Settings
from gateway.sources import Sources
from loaders.audit import RECORDS
from resolvers.identity import is_verified
from tests.conftest import CommandRecorder, bearer, graphql_as, serving
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")

SUSPENDED = "913205057177691597"
#: Seed 1: FULL's legal representative, as the registry holds them.
REPRESENTATIVE = "冯思佳"
RAW_ID = "330108197908038514"

STATUS = """
query($uscc: USCC!) {
  enterprise(uscc: $uscc) {
    name
    serviceStatus { state since reason }
    integrityLevel { grade }
  }
}
"""

MASKED = """
query($uscc: USCC!) { enterprise(uscc: $uscc) { legalRepresentative { name maskedIdNumber } } }
"""

VERIFY = """
query($uscc: USCC!, $name: String!, $id: String!) {
  verifyLegalRepresentative(uscc: $uscc, name: $name, idNumber: $id) { uscc result }
}
"""

EVERYTHING = """
query($uscc: USCC!) {
  enterprise(uscc: $uscc) {
    name
    legalRepresentative { name maskedIdNumber }
    identityAuthentication { verified status method evidenceReference }
    integrityLevel { grade score }
    businessFiles {
      platform storeCount disputeCount
      riskRecords { totalCount edges { node { kind title } } }
    }
  }
}
"""


def _errors(body: dict[str, Any]) -> list[tuple[str, list[Any], str]]:
    return [(e["message"], e["path"], e["extensions"]["code"]) for e in body.get("errors", [])]


async def test_suspended_service_withholds_the_level_and_keeps_the_archive(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    member = await graphql_as(client, bearer(settings, "member"), STATUS, {"uscc": SUSPENDED})
    owner = await graphql_as(
        client, bearer(settings, "owner", enterprise=SUSPENDED), STATUS, {"uscc": SUSPENDED}
    )

    assert member["data"] == {
        "enterprise": {
            "name": "苏州和信服饰有限公司",
            "serviceStatus": {
                "state": "SUSPENDED",
                "since": "2026-08-24T00:00:00+00:00",
                "reason": None,
            },
            "integrityLevel": None,
        }
    }
    assert _errors(member) == [
        ("reason needs tier OWNER.", ["enterprise", "serviceStatus", "reason"], "FORBIDDEN"),
        (
            "Integrity level withheld: the enterprise's service is suspended.",
            ["enterprise", "integrityLevel"],
            "SERVICE_SUSPENDED",
        ),
    ]
    assert owner["data"]["enterprise"]["serviceStatus"]["reason"] == "平台协议违约，服务暂停"
    assert _errors(owner) == [
        (
            "Integrity level withheld: the enterprise's service is suspended.",
            ["enterprise", "integrityLevel"],
            "SERVICE_SUSPENDED",
        )
    ]


async def test_an_operating_period_with_an_end(client: httpx.AsyncClient) -> None:
    body = await graphql_as(
        client,
        {},
        "query($u: USCC!) { enterprise(uscc: $u) { operatingPeriod { start end } } }",
        {"u": "9144030591443346XM"},
    )
    assert body == {
        "data": {"enterprise": {"operatingPeriod": {"start": "2010-12-23", "end": "2030-12-23"}}}
    }


async def test_the_owner_sees_the_id_number_masked_6_8_4(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = await graphql_as(
        client, bearer(settings, "owner", enterprise=FULL), MASKED, {"uscc": FULL}
    )
    masked = body["data"]["enterprise"]["legalRepresentative"]["maskedIdNumber"]

    assert body["data"]["enterprise"]["legalRepresentative"]["name"] == REPRESENTATIVE
    assert masked == "330108********8514"
    visible = [char for char, real in zip(masked, RAW_ID, strict=True) if char == real]
    assert len(visible) == 10


async def test_the_raw_id_number_is_in_no_response_no_log_and_not_in_redis(
    client: httpx.AsyncClient,
    settings: Settings,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    cold_cache: None,
) -> None:
    caplog.set_level(logging.DEBUG)
    viewers = [
        {"role": "owner", "enterprise": FULL},
        {"role": "operator"},
        {"role": "service", "scopes": ["identity:read", "identity:verify", "risk:read"]},
        {"role": "member"},
    ]
    texts = []
    for claims in viewers:
        payload = {"query": EVERYTHING, "variables": {"uscc": FULL}}
        response = await client.post("/graphql", json=payload, headers=bearer(settings, **claims))
        texts.append(response.text)
    service = bearer(settings, "service", scopes=["identity:verify"])
    for name, number in ((REPRESENTATIVE, RAW_ID), ("someone else", RAW_ID)):
        variables = {"uscc": FULL, "name": name, "id": number}
        response = await client.post(
            "/graphql", json={"query": VERIFY, "variables": variables}, headers=service
        )
        texts.append(response.text)
    stored = [await redis.dump(key) for key in await redis.keys("*")]

    assert '"maskedIdNumber":"330108********8514"' in texts[0]
    assert all(RAW_ID not in text for text in texts)
    assert RAW_ID not in caplog.text
    assert stored and all(RAW_ID.encode() not in (value or b"") for value in stored)


@pytest.mark.parametrize(
    ("uscc", "name", "number", "result"),
    [
        (FULL, REPRESENTATIVE, RAW_ID, "MATCH"),
        (FULL, f"  {REPRESENTATIVE} ", RAW_ID.lower(), "MATCH"),
        (FULL, REPRESENTATIVE, "11010519491231002X", "MISMATCH"),
        (FULL, "冯思", RAW_ID, "MISMATCH"),
        ("91110000600037341L", REPRESENTATIVE, RAW_ID, "NOT_FOUND"),
    ],
)
async def test_verification_answers_without_disclosing(
    client: httpx.AsyncClient, settings: Settings, uscc: str, name: str, number: str, result: str
) -> None:
    headers = bearer(settings, "service", scopes=["identity:verify"], subject=f"verifier-{result}")
    body = await graphql_as(client, headers, VERIFY, {"uscc": uscc, "name": name, "id": number})
    assert body == {"data": {"verifyLegalRepresentative": {"uscc": uscc, "result": result}}}


@pytest.mark.parametrize(
    ("name", "number", "message"),
    [
        (REPRESENTATIVE, "330108197908038515", "ID number fails the GB 11643 MOD 11-2 check"),
        (REPRESENTATIVE, "33010819790803851", "ID number must be 18 characters, got 17"),
        ("   ", RAW_ID, "name must be 1 to 50 characters"),
    ],
)
async def test_bad_verification_input_is_rejected_before_any_lookup(
    client: httpx.AsyncClient,
    settings: Settings,
    recorder: CommandRecorder,
    name: str,
    number: str,
    message: str,
) -> None:
    headers = bearer(settings, "service", scopes=["identity:verify"])
    recorder.clear()
    body = await graphql_as(client, headers, VERIFY, {"uscc": FULL, "name": name, "id": number})
    assert body["data"] == {"verifyLegalRepresentative": None}
    assert _errors(body) == [(message, ["verifyLegalRepresentative"], "BAD_USER_INPUT")]
    assert [c for c in recorder.commands if c[0] != "insert"] == []  # only the audit write


async def test_verification_is_rate_limited_per_client(settings: Settings) -> None:
    limited = settings.model_copy(update={"verify_rate_limit": "2/minute"})
    variables = {"uscc": FULL, "name": REPRESENTATIVE, "id": RAW_ID}
    async with serving(limited) as client:
        one = bearer(limited, "service", scopes=["identity:verify"], subject="partner-rl-1")
        other = bearer(limited, "service", scopes=["identity:verify"], subject="partner-rl-2")
        results = [await graphql_as(client, one, VERIFY, variables) for _ in range(3)]
        fresh = await graphql_as(client, other, VERIFY, variables)

    assert [r["data"]["verifyLegalRepresentative"] for r in results[:2]] == [
        {"uscc": FULL, "result": "MATCH"}
    ] * 2
    assert results[2]["data"] == {"verifyLegalRepresentative": None}
    assert _errors(results[2]) == [
        (
            "verifyLegalRepresentative is limited to 2 per 1 minute",
            ["verifyLegalRepresentative"],
            "RATE_LIMITED",
        )
    ]
    assert fresh["data"]["verifyLegalRepresentative"]["result"] == "MATCH"


async def _audit_records(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    sources = Sources.from_settings(settings, None)
    try:
        cursor = sources.audit[RECORDS].find(
            {"request_id": request_id}, {"_id": 0, "visible_from": 0}
        )
        return [doc async for doc in cursor.sort("action", 1)]
    finally:
        await sources.close()


async def _post(
    client: httpx.AsyncClient, headers: dict[str, str], rid: str, **payload: Any
) -> None:
    response = await client.post("/graphql", json=payload, headers=headers | {"x-request-id": rid})
    assert response.status_code == 200


async def test_sensitive_reads_by_others_are_audited_and_the_owners_are_not(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    operator = bearer(settings, "operator", subject="staff-7")
    owner = bearer(settings, "owner", enterprise=FULL)
    member = bearer(settings, "member")
    await _post(client, operator, "audit-operator-1", query=EVERYTHING, variables={"uscc": FULL})
    await _post(client, owner, "audit-owner-1", query=EVERYTHING, variables={"uscc": FULL})
    await _post(client, member, "audit-member-1", query=EVERYTHING, variables={"uscc": FULL})

    [record] = await _audit_records(settings, "audit-operator-1")
    assert record.pop("at") is not None
    assert record == {
        "viewer": {"kind": "operator", "subject": "staff-7", "platform": None},
        "request_id": "audit-operator-1",
        "enterprise": FULL,
        "action": "read",
        # By schema coordinate: an alias cannot hide a field from the trail.
        "fields": [
            "IdentityAuthentication.evidenceReference",
            "IdentityAuthentication.method",
            "LegalRepresentative.maskedIdNumber",
            "PlatformFile.riskRecords",
            "RiskRecord.kind",
            "RiskRecord.title",
        ],
        "purpose": ["operator"],
    }
    assert await _audit_records(settings, "audit-owner-1") == []
    assert await _audit_records(settings, "audit-member-1") == []


async def test_a_verification_is_audited_with_its_outcome_only(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    service = bearer(
        settings, "service", scopes=["identity:verify"], platform="1688", subject="p-9"
    )
    variables = {"uscc": FULL, "name": REPRESENTATIVE, "id": RAW_ID}
    await _post(client, service, "audit-verify-1", query=VERIFY, variables=variables)

    records = await _audit_records(settings, "audit-verify-1")
    for record in records:
        record.pop("at")
    assert records == [
        {
            "viewer": {"kind": "service", "subject": "p-9", "platform": "1688"},
            "request_id": "audit-verify-1",
            "enterprise": FULL,
            "action": "read",
            "fields": [
                "LegalRepresentativeVerification.result",
                "LegalRepresentativeVerification.uscc",
                "Query.verifyLegalRepresentative",
            ],
            "purpose": ["identity:verify"],
        },
        {
            "viewer": {"kind": "service", "subject": "p-9", "platform": "1688"},
            "request_id": "audit-verify-1",
            "enterprise": FULL,
            "action": "verify_legal_representative",
            "fields": ["Query.verifyLegalRepresentative"],
            "purpose": ["identity:verify"],
            "outcome": "MATCH",
        },
    ]
    assert RAW_ID not in str(records)


async def test_a_down_source_costs_only_its_fields(settings: Settings, cold_cache: None) -> None:
    down = settings.model_copy(
        update={
            "mongodb_url_platform_taobao": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            "mongodb_timeout_ms": 200,
        }
    )
    query = (
        "query($u: USCC!) { enterprise(uscc: $u) { name integrityLevel { grade } "
        "businessFiles { platform storeCount } } }"
    )
    async with serving(down) as client:
        body = await graphql_as(client, bearer(settings, "member"), query, {"u": FULL})

    files = body["data"]["enterprise"]["businessFiles"]
    assert body["data"]["enterprise"]["name"] == "杭州百川服饰有限公司"
    assert [f["platform"] for f in files] == ["ALIBABA_1688", "TAOBAO", "TMALL", "ALIBABA_COM"]
    assert files[1]["storeCount"] is None
    assert files[0]["storeCount"] is not None
    assert _errors(body) == [
        (
            "The platform_taobao source is unavailable; try again later.",
            ["enterprise", "businessFiles", 1, "storeCount"],
            "SOURCE_UNAVAILABLE",
        )
    ]


@pytest.mark.parametrize(
    ("doc", "verified"),
    [
        (None, False),
        ({"verified": False, "expires_at": None}, False),
        ({"verified": True, "expires_at": None}, True),
        ({"verified": True, "expires_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}, True),
        ({"verified": True, "expires_at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)}, False),
    ],
)
def test_a_lapsed_verification_no_longer_counts(doc: dict[str, Any] | None, verified: bool) -> None:
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    assert is_verified(doc, now) is verified


async def test_verification_refuses_to_travel_in_a_url(
    client: httpx.AsyncClient, settings: Settings, recorder: CommandRecorder
) -> None:
    recorder.clear()
    response = await client.get(
        "/graphql",
        params={
            "query": VERIFY,
            "variables": f'{{"uscc": "{FULL}", "name": "x", "id": "{RAW_ID}"}}',
        },
        headers=bearer(settings, "service", scopes=["identity:verify"]),
    )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"verifyLegalRepresentative": None}
    assert _errors(body) == [
        (
            "send verifyLegalRepresentative as a POST: an ID number must not travel in a URL",
            ["verifyLegalRepresentative"],
            "BAD_USER_INPUT",
        )
    ]
    assert [c for c in recorder.commands if c[0] == "find"] == []
