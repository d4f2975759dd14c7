"""Source contracts: the one declared shape of each collection the gateway reads.

Other systems fill the sources (the registry sync, each platform's pipeline). Each
collection's shape is declared here once, in MongoDB's ``$jsonSchema`` dialect (the
``bsonType``, ``required``, ``properties``, ``items`` and ``enum`` keywords), so the same
document serves three ends: it is published in docs/contracts/ (``integrity-gateway
export-contracts``), it can be installed as the collection's validator
(``integrity-gateway ensure-validators``), and the loaders check every document they
read from MongoDB against it (``violation``): a document that breaks its contract is
logged once, with its key and the rule it breaks (never a value), and its fields answer
SOURCE_UNAVAILABLE instead of failing a resolver. Fields beyond the contract are allowed
(a source may carry more than the gateway reads).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, ObjectId

from gateway.settings import Source

__all__ = ["CONTRACTS", "PLATFORM_SOURCES", "contract", "violation"]

PLATFORM_SOURCES = (
    Source.PLATFORM_1688,
    Source.PLATFORM_TAOBAO,
    Source.PLATFORM_TMALL,
    Source.PLATFORM_ALIBABA_COM,
)

_USCC = {"bsonType": "string", "pattern": "^[0-9A-HJ-NPQRTUWXY]{18}$"}
_TEXT = {"bsonType": "string"}
_DATE = {"bsonType": "date"}
_COUNT = {"bsonType": ["int", "long"], "minimum": 0}
_MONEY = {
    "bsonType": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"bsonType": "decimal"}, "currency": _TEXT},
}


def _shape(
    required: Mapping[str, Any], optional: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "bsonType": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    types = schema["bsonType"]
    return {**schema, "bsonType": [*(types if isinstance(types, list) else [types]), "null"]}


#: (source or "platform", collection) → its contract. Enum values are the resolvers'
#: (tests/test_contracts.py holds them to the GraphQL enums).
CONTRACTS: dict[tuple[str, str], dict[str, Any]] = {
    ("registry", "enterprises"): _shape(
        {
            "_id": _USCC,
            "name": _TEXT,
            "division": {"bsonType": "string", "pattern": "^[0-9]{6}$"},
            "status": {"enum": ["IN_BUSINESS", "REVOKED", "CANCELLED", "MOVED_OUT", "LIQUIDATING"]},
            "operating_from": _DATE,
            "operating_to": _nullable(_DATE),
            "address": _TEXT,
            "established_on": _DATE,
            "registered_capital": _MONEY,
            "business_scope": _TEXT,
            "authority": _TEXT,
            "legal_representative_name": _TEXT,
            "shareholders": {
                "bsonType": "array",
                "items": _shape(
                    {
                        "name": _TEXT,
                        "kind": {"enum": ["NATURAL_PERSON", "LEGAL_PERSON"]},
                        "subscribed_capital": _MONEY,
                        "ratio_percent": {"bsonType": "decimal"},
                    }
                ),
            },
            "updated_at": _DATE,
        }
    ),
    ("registry", "change_records"): _shape(
        {
            "_id": _TEXT,
            "uscc": _USCC,
            "seq": _COUNT,
            "date": _DATE,
            "item": _TEXT,
            "before": _TEXT,
            "after": _TEXT,
        }
    ),
    ("registry", "legal_representatives"): _shape(
        {
            "_id": _USCC,
            "name": _TEXT,
            # Sealed (gateway/pii.py); plain text only before `rotate-keys` sealed it.
            "id_number": {
                "bsonType": ["object", "string"],
                "required": ["kid", "ciphertext", "blind_index"],
                "properties": {
                    "kid": _TEXT,
                    "ciphertext": {"bsonType": "binData"},
                    "blind_index": {"bsonType": "binData"},
                },
            },
        }
    ),
    ("identity", "authentications"): _shape(
        {
            "_id": _USCC,
            "verified": {"bsonType": "bool"},
            "status": {"enum": ["VERIFIED", "PENDING", "EXPIRED", "REJECTED"]},
            "verified_at": _nullable(_DATE),
            "expires_at": _nullable(_DATE),
            "method": {
                "enum": [
                    "BUSINESS_LICENSE_VERIFICATION",
                    "CORPORATE_BANK_TRANSFER",
                    "LEGAL_REPRESENTATIVE_FACE",
                ]
            },
            "evidence_ref": _TEXT,
        }
    ),
    ("integrity", "levels"): _shape(
        {
            "_id": _USCC,
            "grade": _TEXT,
            "score": _COUNT,
            "evaluated_at": _DATE,
            "valid_until": _DATE,
        }
    ),
    ("integrity", "service_status"): _shape(
        {
            "_id": _USCC,
            "status": {"enum": ["ACTIVE", "SUSPENDED", "TERMINATED"]},
            "reason": _nullable(_TEXT),
            "since": _DATE,
        }
    ),
    ("platform", "stores"): _shape(
        {
            "_id": _TEXT,
            "uscc": _USCC,
            "name": _TEXT,
            "address": _TEXT,
            "main_categories": {"bsonType": "array", "items": _TEXT},
            "status": {"enum": ["OPEN", "CLOSED", "SUSPENDED"]},
            "opened_on": _DATE,
        }
    ),
    ("platform", "statistics"): _shape(
        {
            "_id": _USCC,
            "store_count": _COUNT,
            "dispute_count": _COUNT,
            "complaint_count": _COUNT,
            "punishment_count": _COUNT,
        }
    ),
    ("platform", "chengxintong"): _shape(
        {
            "_id": _USCC,
            "years_open": _COUNT,
            "cumulative_transactions": _COUNT,
            "buyer_count": _COUNT,
            "repeat_purchase_rate": {"bsonType": "decimal"},
        }
    ),
    ("platform", "certifications"): _shape(
        {
            "_id": _TEXT,
            "uscc": _USCC,
            "agency": _TEXT,
            "certified_on": _DATE,
            "valid_until": _DATE,
            "result": {"enum": ["PASSED", "CONDITIONAL", "FAILED"]},
        }
    ),
    ("platform", "risk_records"): _shape(
        {
            "_id": _TEXT,
            "uscc": _USCC,
            "kind": {"enum": ["DISPUTE", "COMPLAINT", "PUNISHMENT"]},
            "occurred_on": _DATE,
            "title": _TEXT,
            "outcome": _TEXT,
            "resolved_on": _nullable(_DATE),
        }
    ),
}


def contract(source: Source, collection: str) -> dict[str, Any] | None:
    """The contract of ``collection`` in ``source``; None for one not declared."""
    family = "platform" if source in PLATFORM_SOURCES else source.value
    return CONTRACTS.get((family, collection))


_BSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "date": (dt.datetime,),
    "decimal": (Decimal128, Decimal),
    "int": (int,),
    "long": (int,),
    "double": (float,),
    "bool": (bool,),
    "object": (Mapping,),
    "array": (list, tuple),
    "binData": (Binary, bytes),
    "objectId": (ObjectId,),
    "null": (type(None),),
}


Check = Callable[[Any, str], "str | None"]
#: Compiled checks by the id of their schema, each kept with its schema (so an id is
#: never reused for another while its entry lives).
_compiled: dict[int, tuple[Mapping[str, Any], Check]] = {}


def violation(schema: Mapping[str, Any], value: Any, path: str = "") -> str | None:
    """The first rule of ``schema`` that ``value`` breaks, as "path: rule" (never the
    value itself); None when it keeps them all. Each schema is compiled once into
    nested checks (the loaders run this on every document they read from MongoDB)."""
    entry = _compiled.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _compiled[id(schema)] = (schema, _compile(schema))
    return entry[1](value, path)


def _compile(schema: Mapping[str, Any]) -> Check:
    steps: list[Check] = []
    types = schema.get("bsonType")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        allowed = tuple(kind for name in names for kind in _BSON_TYPES[name])
        integers_only = all(name in ("int", "long") for name in names if name != "null")
        wanted = " or ".join(names)

        def typed(value: Any, path: str) -> str | None:
            if not isinstance(value, allowed) or (integers_only and isinstance(value, bool)):
                return f"{path or '(document)'}: must be {wanted}"
            return None

        steps.append(typed)
    if "enum" in schema:
        members = frozenset(schema["enum"])
        listed = ", ".join(map(str, schema["enum"]))

        def enumerated(value: Any, path: str) -> str | None:
            if not isinstance(value, str | int) or value not in members:
                return f"{path or '(document)'}: must be one of {listed}"
            return None

        steps.append(enumerated)
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])

        def matching(value: Any, path: str) -> str | None:
            if isinstance(value, str) and pattern.search(value) is None:
                return f"{path or '(document)'}: must match {schema['pattern']}"
            return None

        steps.append(matching)
    if "minimum" in schema:
        least = schema["minimum"]

        def bounded(value: Any, path: str) -> str | None:
            if isinstance(value, int) and value < least:
                return f"{path or '(document)'}: must be at least {least}"
            return None

        steps.append(bounded)
    required = tuple(schema.get("required", ()))
    properties = tuple((name, _compile(sub)) for name, sub in schema.get("properties", {}).items())
    if required or properties:

        def fields(value: Any, path: str) -> str | None:
            if not isinstance(value, Mapping):
                return None
            prefix = f"{path}." if path else ""
            for name in required:
                if name not in value:
                    return f"{prefix}{name}: required"
            for name, check in properties:
                if name in value:
                    found = check(value[name], prefix + name)
                    if found:
                        return found
            return None

        steps.append(fields)
    if "items" in schema:
        item = _compile(schema["items"])

        def items(value: Any, path: str) -> str | None:
            if isinstance(value, list | tuple):
                for index, element in enumerate(value):
                    found = item(element, f"{path}[{index}]")
                    if found:
                        return found
            return None

        steps.append(items)

    def check(value: Any, path: str) -> str | None:
        for step in steps:
            found = step(value, path)
            if found:
                return found
        return None

    return check
