"""ID numbers at rest: sealed with AES-GCM under PII_ENCRYPTION_KEYS, compared through a
keyed blind index, re-sealed by ``integrity-gateway rotate-keys``.

The suite's store was seeded in dev mode, with the key dev mode made under the data
directory; the rotation tests seal everything with a new key and then back.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from typing import Any

import bson
import httpx
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from gateway.cli import main
from gateway.pii import Keyring, PiiError, dev_keys_path, dev_keys_value
from gateway.settings import ConfigurationError, Settings, Source
from gateway.sources import Sources
from loaders.base import cache_key
from loaders.codes import id_number_check_char, validate_id_number
from loaders.registry import LEGAL_REPRESENTATIVES
from loaders.rotation import rotate_keys
from loaders.seed import generate
from tests.conftest import RANDOM_SEED, SEEDED_ENTERPRISES, Stores, bearer, graphql_as

MASKED = "query($u: USCC!) { enterprise(uscc: $u) { legalRepresentative { maskedIdNumber } } }"
VERIFY = """query($u: USCC!, $n: String!, $i: String!) {
  verifyLegalRepresentative(uscc: $u, name: $n, idNumber: $i) { result }
}"""
#: Anything shaped like a resident ID number: 17 digits and a check character.
ID_SHAPED = re.compile(rb"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def _dev_keys(settings: Settings) -> str:
    return dev_keys_value(dev_keys_path(settings))


def _new_key(kid: str) -> str:
    return f"{kid}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def _plain_numbers() -> dict[str, str]:
    """The seed's ID numbers, as generated (before sealing)."""
    batch, _ = generate(SEEDED_ENTERPRISES, RANDOM_SEED)
    return {doc["_id"]: doc["id_number"] for doc in batch[(Source.REGISTRY, LEGAL_REPRESENTATIVES)]}


async def test_no_id_number_lies_in_the_store_in_plain_text(
    mongo: AsyncMongoClient[dict[str, Any]], seeded: list[str]
) -> None:
    numbers = _plain_numbers()
    assert len(numbers) == SEEDED_ENTERPRISES
    raw = []
    for name in await mongo.list_database_names():
        for collection in await mongo[name].list_collection_names():
            raw += [bson.encode(doc) async for doc in mongo[name][collection].find({})]
    assert raw
    found = [doc for doc in raw if any(number.encode() in doc for number in numbers.values())]
    assert found == []
    # Nothing shaped like an ID number either, in the collection that holds them.
    stored = await mongo["registry"][LEGAL_REPRESENTATIVES].find({}).to_list(None)
    # (The USCC is left out: some are 18 digits.)
    shaped = [
        found
        for doc in stored
        for found in ID_SHAPED.findall(bson.encode({k: v for k, v in doc.items() if k != "_id"}))
    ]
    assert shaped == []
    assert {doc["id_number"]["kid"] for doc in stored} == {_dev_keys_stored_kid(stored)}
    assert all(len(doc["id_number"]["ciphertext"]) == 12 + 18 + 16 for doc in stored)


def _dev_keys_stored_kid(stored: list[dict[str, Any]]) -> str:
    kids = {doc["id_number"]["kid"] for doc in stored}
    assert len(kids) == 1
    (kid,) = kids
    assert kid.startswith("dev-")
    return str(kid)


def test_a_sealed_number_opens_only_for_its_own_enterprise() -> None:
    keyring = Keyring.parse(_new_key("k1"))
    sealed = keyring.seal("91330110MAJPDCW44H", "33010819750815851X")
    assert keyring.open("91330110MAJPDCW44H", sealed) == "33010819750815851X"
    assert keyring.matches("91330110MAJPDCW44H", sealed, "33010819750815851X")
    assert not keyring.matches("91330110MAJPDCW44H", sealed, "110105194912310029")
    # Copied onto another enterprise, it neither opens nor matches.
    with pytest.raises(PiiError, match="does not open"):
        keyring.open("92330106MAYBN5WK5N", sealed)
    assert not keyring.matches("92330106MAYBN5WK5N", sealed, "33010819750815851X")
    with pytest.raises(PiiError, match="no configured key has id 'k0'"):
        keyring.open("91330110MAJPDCW44H", {**sealed, "kid": "k0"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1", "item 1 is not kid:base64key"),
        ("k 1:AAAA", "item 1 is not kid:base64key"),
        ("k1:not base64!", "key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(bytes(16)).decode()}", "key 'k1' is 16 bytes; keys are 32"),
        (f"{_new_key('k1')},{_new_key('k1')}", "names key 'k1' twice"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        Keyring.parse(value)
    if ":" in value:
        assert value.split(":", 1)[1].split(",")[0] not in str(refused.value)
    with pytest.raises(ValueError, match=message):
        Settings(pii_encryption_keys=value)


async def test_verification_never_opens_the_stored_number(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> str:
        raise AssertionError("a verification opened an ID number")

    monkeypatch.setattr(Keyring, "open", refuse)
    uscc = seeded[5]
    number = _plain_numbers()[uscc]
    service = bearer(settings, "service", scopes=["identity:verify"])
    name = await _representative(client, settings, uscc)
    first17 = number[:16] + ("1" if number[16] != "1" else "2")
    wrong = first17 + id_number_check_char(first17)  # valid, but not this person's
    answers = []
    for claimed in (number, number.lower(), wrong):
        body = await graphql_as(client, service, VERIFY, {"u": uscc, "n": name, "i": claimed})
        answers.append(body["data"]["verifyLegalRepresentative"]["result"])
    assert answers == ["MATCH", "MATCH", "MISMATCH"]


async def _representative(client: httpx.AsyncClient, settings: Settings, uscc: str) -> str:
    body = await graphql_as(
        client,
        bearer(settings, "owner", enterprise=uscc),
        "query($u: USCC!) { enterprise(uscc: $u) { legalRepresentative { name } } }",
        {"u": uscc},
    )
    return str(body["data"]["enterprise"]["legalRepresentative"]["name"])


async def test_a_number_moved_to_another_enterprise_is_withheld(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    representatives = mongo["registry"][LEGAL_REPRESENTATIVES]
    source, target = seeded[6], seeded[7]
    moved = await representatives.find_one({"_id": source})
    original = await representatives.find_one({"_id": target})
    assert moved is not None and original is not None
    key = cache_key(Source.REGISTRY, LEGAL_REPRESENTATIVES, "_id", target)
    owner = bearer(settings, "owner", enterprise=target)
    try:
        await representatives.update_one(
            {"_id": target}, {"$set": {"id_number": moved["id_number"]}}
        )
        await redis.delete(key)
        body = await graphql_as(client, owner, MASKED, {"u": target})
    finally:
        await representatives.replace_one({"_id": target}, original)
        await redis.delete(key)
    assert body == {"data": {"enterprise": {"legalRepresentative": {"maskedIdNumber": None}}}}
    assert f"legal representative of {target}: a sealed ID number of {target} does not open" in (
        caplog.text
    )
    restored = await graphql_as(client, owner, MASKED, {"u": target})
    masked = restored["data"]["enterprise"]["legalRepresentative"]["maskedIdNumber"]
    number = _plain_numbers()[target]
    assert masked == number[:6] + "*" * 8 + number[14:]


async def _kids(mongo: AsyncMongoClient[dict[str, Any]]) -> dict[str, int]:
    kids: dict[str, int] = {}
    async for doc in mongo["registry"][LEGAL_REPRESENTATIVES].find({}):
        kid = doc["id_number"]["kid"] if isinstance(doc["id_number"], dict) else "plain"
        kids[kid] = kids.get(kid, 0) + 1
    return kids


async def test_rotate_keys_reseals_everything_resumes_and_seals_plain_text(
    settings: Settings,
    stores: Stores,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dev = _dev_keys(settings)
    dev_kid = dev.partition(":")[0]
    new = _new_key("2026-11")
    representatives = mongo["registry"][LEGAL_REPRESENTATIVES]
    numbers = _plain_numbers()
    legacy = seeded[8]
    before_legacy = await representatives.find_one({"_id": legacy})
    # A number stored before encryption, as plain text.
    await representatives.update_one({"_id": legacy}, {"$set": {"id_number": numbers[legacy]}})
    rotated = Sources.from_settings(
        settings.model_copy(update={"pii_encryption_keys": _secret(f"{new},{dev}")}),
        None,
        bulk=True,
    )
    try:
        calls = 0

        def interrupt(report: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise KeyboardInterrupt  # stopped after its first batch

        with pytest.raises(KeyboardInterrupt):
            await rotate_keys(rotated, batch=50, progress=interrupt)
        first_batch = sorted(numbers)[:50]
        left_plain = 0 if legacy in first_batch else 1
        assert await _kids(mongo) == {
            "2026-11": 50,
            dev_kid: SEEDED_ENTERPRISES - 50 - left_plain,
            **({"plain": 1} if left_plain else {}),
        }
        report = await rotate_keys(rotated, batch=50)
        assert (report.resealed, report.unreadable, report.changed_meanwhile) == (
            SEEDED_ENTERPRISES - 50,
            0,
            0,
        )
        assert await _kids(mongo) == {"2026-11": SEEDED_ENTERPRISES}
        again = await rotate_keys(rotated, batch=50)
        assert again.resealed == 0
        opened = {
            doc["_id"]: rotated.pii.open(doc["_id"], doc["id_number"])
            async for doc in representatives.find({})
        }
        assert opened == numbers
        assert all(validate_id_number(number) == number for number in opened.values())
    finally:
        await rotated.close()
        # Back to the dev key, through the command line.
        monkeypatch.setenv("MONGODB_URL", stores.mongodb_url)
        monkeypatch.setenv("REDIS_URL", stores.redis_url)
        monkeypatch.setenv("GATEWAY_DATA_DIR", str(stores.data_dir))
        monkeypatch.setenv("PII_ENCRYPTION_KEYS", f"{dev},{new}")
        assert await asyncio.to_thread(main, ["rotate-keys", "--batch", "40"]) == 0
    out = capsys.readouterr().out
    assert f"rotate-keys: {SEEDED_ENTERPRISES} ID numbers sealed with key {dev_kid} in" in out
    assert await _kids(mongo) == {dev_kid: SEEDED_ENTERPRISES}
    assert before_legacy is not None and isinstance(before_legacy["id_number"], dict)


async def test_rotate_keys_names_what_no_key_opens(
    stores: Stores,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    representatives = mongo["registry"][LEGAL_REPRESENTATIVES]
    stray = seeded[9]
    original = await representatives.find_one({"_id": stray})
    assert original is not None
    foreign = Keyring.parse(_new_key("retired")).seal(stray, _plain_numbers()[stray])
    await representatives.update_one({"_id": stray}, {"$set": {"id_number": foreign}})
    monkeypatch.setenv("MONGODB_URL", stores.mongodb_url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(stores.data_dir))
    monkeypatch.setenv("PII_ENCRYPTION_KEYS", _dev_keys(settings))
    try:
        assert await asyncio.to_thread(main, ["rotate-keys"]) == 1
    finally:
        await representatives.replace_one({"_id": stray}, original)
    err = capsys.readouterr().err
    assert err == (
        "rotate-keys: 1 sealed with a key not in PII_ENCRYPTION_KEYS "
        f"(first: {stray}); add that key and run it again\n"
    )


def test_commands_that_read_numbers_need_the_key_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stores: Stores
) -> None:
    monkeypatch.setenv("GATEWAY_DEV_MODE", "false")
    monkeypatch.setenv("MONGODB_URL", stores.mongodb_url)
    monkeypatch.delenv("PII_ENCRYPTION_KEYS", raising=False)
    assert main(["rotate-keys"]) == 2
    assert capsys.readouterr().err == (
        "rotate-keys: GATEWAY_DEV_MODE is off and PII_ENCRYPTION_KEYS is not set: ID numbers "
        "cannot be sealed or opened without a key (see README, Personal data)\n"
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def test_demo_identity_gives_a_pair_that_verifies(
    client: httpx.AsyncClient,
    settings: Settings,
    stores: Stores,
    seeded: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A newcomer's way to a matching pair: made again from the seed, never decrypted."""
    uscc = seeded[11]
    asked = ["demo-identity", "--enterprise", uscc, "--enterprises", str(SEEDED_ENTERPRISES)]
    assert main([*asked, "--random-seed", str(RANDOM_SEED)]) == 0
    printed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert printed["idNumber"] == _plain_numbers()[uscc]
    service = bearer(settings, "service", scopes=["identity:verify"])
    body = await graphql_as(
        client, service, VERIFY, {"u": uscc, "n": printed["name"], "i": printed["idNumber"]}
    )
    assert body["data"]["verifyLegalRepresentative"]["result"] == "MATCH"

    # Another seed's enterprises are not this one's.
    assert main([*asked, "--random-seed", str(RANDOM_SEED + 1)]) == 2
    assert capsys.readouterr().err == (
        f"demo-identity: {uscc} is not one of the {SEEDED_ENTERPRISES} enterprises seeded "
        f"with random seed {RANDOM_SEED + 1}\n"
    )
    monkeypatch.setenv("GATEWAY_DEV_MODE", "false")
    assert main([*asked]) == 2
    assert capsys.readouterr().err.startswith("demo-identity: only in dev mode")
