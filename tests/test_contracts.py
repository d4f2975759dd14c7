"""Source contracts: one declared shape per collection (loaders/contracts.py), published
in docs/contracts, installable as MongoDB validators, kept by the seeder, and enforced
as documents are read: one that breaks its contract costs only its own fields."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import WriteError
from redis.asyncio import Redis

from gateway.cli import main
from gateway.embedded import EmbeddedMongo
from gateway.settings import Settings, Source
from loaders.base import cache_key
from loaders.contracts import CONTRACTS, contract, violation
from resolvers.archive import BusinessStatus, ShareholderKind
from resolvers.identity import AuthenticationMethod, AuthenticationStatus
from resolvers.integrity import ServiceState
from resolvers.platforms import CertificationResult, RiskKind, StoreStatus
from tests.conftest import bearer, graphql_as

ROOT = Path(__file__).resolve().parents[1]


async def test_every_seeded_document_keeps_its_contract(
    mongo: AsyncMongoClient[dict[str, Any]], seeded: list[str]
) -> None:
    checked = 0
    for source in Source:
        for collection in await mongo[source.value].list_collection_names():
            shape = contract(source, collection)
            if shape is None:
                continue
            async for doc in mongo[source.value][collection].find({}):
                assert violation(shape, doc) is None, (source.value, collection, doc["_id"])
                checked += 1
    assert checked > 1000


def _enum(schema: dict[str, Any], *path: str) -> list[str]:
    for step in path:
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return sorted(schema["enum"])


def test_the_contracts_allow_exactly_what_the_graph_can_show() -> None:
    def values(enum: Any) -> list[str]:
        return sorted(member.name for member in enum)

    assert _enum(CONTRACTS[("registry", "enterprises")], "status") == values(BusinessStatus)
    assert _enum(CONTRACTS[("registry", "enterprises")], "shareholders", "[]", "kind") == values(
        ShareholderKind
    )
    authentications = CONTRACTS[("identity", "authentications")]
    # NOT_APPLIED is the graph's word for no document at all: never stored.
    assert _enum(authentications, "status") == sorted(
        set(values(AuthenticationStatus)) - {"NOT_APPLIED"}
    )
    assert _enum(authentications, "method") == values(AuthenticationMethod)
    assert _enum(CONTRACTS[("integrity", "service_status")], "status") == values(ServiceState)
    assert _enum(CONTRACTS[("platform", "stores")], "status") == values(StoreStatus)
    assert _enum(CONTRACTS[("platform", "risk_records")], "kind") == values(RiskKind)
    assert _enum(CONTRACTS[("platform", "certifications")], "result") == values(CertificationResult)


def test_the_published_contracts_are_the_code(tmp_path: Path) -> None:
    assert main(["export-contracts", "--output", str(tmp_path)]) == 0
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in (ROOT / "docs/contracts").iterdir()}
    assert len(written) == len(CONTRACTS) == 11
    assert committed == written


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"status": "PAUSED"}, "status: must be one of ACTIVE, SUSPENDED, TERMINATED"),
        ({"since": "2026-01-01"}, "since: must be date"),
    ],
)
async def test_a_document_that_breaks_its_contract_costs_only_its_fields(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, Any],
    rule: str,
) -> None:
    statuses = mongo["integrity"]["service_status"]
    uscc = seeded[12] if "status" in change else seeded[13]
    original = await statuses.find_one({"_id": uscc})
    assert original is not None
    key = cache_key(Source.INTEGRITY, "service_status", "_id", uscc)
    query = "query($u: USCC!) { enterprise(uscc: $u) { uscc serviceStatus { state } } }"
    member = bearer(settings, "member")
    caplog.set_level(logging.ERROR, logger="loaders.base")
    try:
        await statuses.update_one({"_id": uscc}, {"$set": change})
        await redis.delete(key)
        answers = [await graphql_as(client, member, query, {"u": uscc}) for _ in range(2)]
        cached = await redis.exists(key)
    finally:
        await statuses.replace_one({"_id": uscc}, original)
        await redis.delete(key)
    for answer in answers:
        assert answer["data"] == {"enterprise": {"uscc": uscc, "serviceStatus": None}}
        assert [(e["path"], e["extensions"]["code"]) for e in answer["errors"]] == [
            (["enterprise", "serviceStatus"], "SOURCE_UNAVAILABLE")
        ]
    assert cached == 0
    lines = [r.getMessage() for r in caplog.records if "breaks its contract" in r.getMessage()]
    assert lines == [
        f"integrity.service_status {uscc} breaks its contract ({rule}): "
        "its fields answer SOURCE_UNAVAILABLE"
    ]  # once, however often it is read; and never the value
    assert str(next(iter(change.values()))) not in lines[0]
    healed = await graphql_as(client, member, query, {"u": uscc})
    assert "errors" not in healed


async def test_ensure_validators_installs_the_contracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmbeddedMongo(tmp_path / "mongodb") as store:
        assert isinstance(store, EmbeddedMongo)
        with MongoClient(store.url) as client:
            statuses = client["integrity"]["service_status"]
            statuses.insert_one({"_id": "91330110MAJPDCW44H", "status": "ACTIVE"})
            monkeypatch.setenv("MONGODB_URL", store.url)
            monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
            argv = ["ensure-validators", "--action", "error"]
            assert await asyncio.to_thread(main, argv) == 0
            assert capsys.readouterr().out == (
                "  integrity.service_status: validator installed (error)\n"
            )
            with pytest.raises(WriteError) as refused:
                statuses.insert_one({"_id": "92330106MAYBN5WK5N", "status": "PAUSED"})
            assert refused.value.code == 121
            statuses.insert_one(
                {
                    "_id": "92330106MAYBN5WK5N",
                    "status": "SUSPENDED",
                    "reason": "核查中",
                    "since": dt.datetime(2026, 1, 1),
                }
            )
