"""Every field's tier, as the service agreement sets it, and what each viewer gets.

``EXPECTED`` is written from DESIGN §1, independently of the code: a field added without
a tier, or with a different one, fails ``test_declared_tiers_match_the_agreement``. The
matrix then asks every field as every kind of viewer, over HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import GraphQLError, GraphQLNonNull, GraphQLObjectType, get_named_type, parse
from graphql.pyutils import Path

from gateway.devkeys import ALL_SCOPES
from gateway.settings import Settings
from resolvers.engine import ROUTER_FIELDS
from resolvers.permissions import Decision, Rule, Tier, _denial
from resolvers.schema import schema
from tests.conftest import bearer, graphql_as

pytestmark = pytest.mark.usefixtures("seeded")

#: Seed 1: active, verified identity record, and on 1688 with stores, Chengxintong,
#: certifications and risk records, so every field has a value to hide.
FULL = "91330108MAH7CX771U"
OTHER = "91330110MAJPDCW44H"

P, M = ("PUBLIC", ()), ("MEMBER", ())
OWNER = ("OWNER", ())
IDENTITY_READ = ("OWNER", ("identity:read",))
RISK_READ = ("OWNER", ("risk:read",))
VERIFY = ("SCOPE", ("identity:verify",))
CORRECTIONS = ("OWNER", ("corrections:request", "corrections:resolve"))

EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "Query.enterprise": P,
    "Query.verifyLegalRepresentative": VERIFY,
    **{
        f"Enterprise.{name}": P
        for name in [
            "uscc",
            "name",
            "kind",
            "region",
            "status",
            "operatingPeriod",
            "registeredAddress",
            "establishedOn",
            "registeredCapital",
            "businessScope",
            "registrationAuthority",
            "legalRepresentative",
            "shareholders",
            "updatedAt",
            "changeRecords",
            "identityAuthentication",
            "serviceStatus",
        ]
    },
    "Enterprise.integrityLevel": M,
    "Enterprise.businessFiles": M,
    **{f"Region.{name}": P for name in ("code", "name", "province")},
    **{f"OperatingPeriod.{name}": P for name in ("start", "end")},
    **{f"Money.{name}": P for name in ("amount", "currency")},
    **{f"Shareholder.{n}": P for n in ("name", "kind", "subscribedCapital", "ratioPercent")},
    **{f"ChangeRecord.{name}": P for name in ("date", "item", "before", "after")},
    "LegalRepresentative.name": P,
    "LegalRepresentative.maskedIdNumber": OWNER,
    "IdentityAuthentication.verified": P,
    "IdentityAuthentication.status": M,
    "IdentityAuthentication.verifiedAt": M,
    "IdentityAuthentication.expiresAt": M,
    "IdentityAuthentication.method": IDENTITY_READ,
    "IdentityAuthentication.evidenceReference": IDENTITY_READ,
    "ServiceStatus.state": P,
    "ServiceStatus.since": P,
    "ServiceStatus.reason": OWNER,
    **{f"IntegrityLevel.{n}": M for n in ("grade", "score", "evaluatedAt", "validUntil")},
    **{
        f"PlatformFile.{name}": M
        for name in [
            "platform",
            "storeCount",
            "stores",
            "chengxintong",
            "certifications",
            "disputeCount",
            "complaintCount",
            "punishmentCount",
        ]
    },
    "PlatformFile.riskRecords": RISK_READ,
    **{f"Store.{n}": M for n in ("name", "address", "mainCategories", "status", "openedOn")},
    **{
        f"Chengxintong.{name}": M
        for name in (
            "yearsOpen",
            "cumulativeTransactions",
            "buyerCount",
            "repeatPurchaseRatePercent",
        )
    },
    **{f"Certification.{n}": M for n in ("agency", "certifiedOn", "validUntil", "result")},
    **{
        f"RiskRecord.{name}": RISK_READ
        for name in ("kind", "occurredOn", "title", "outcome", "resolvedOn")
    },
    "Query.integrityBadges": P,
    "Query.enterprises": P,
    "Query.node": P,
    "Query.nodes": P,
    **{
        f"IntegrityBadge.{name}": P
        for name in ("uscc", "name", "verified", "serviceState", "updatedAt")
    },
    "IntegrityBadge.grade": M,
    "IntegrityBadge.gradeLabel": M,
    "LegalRepresentativeVerification.uscc": VERIFY,
    "LegalRepresentativeVerification.result": VERIFY,
    # The write side (DESIGN §6): the enterprise's own, and operators'.
    "Enterprise.notifications": OWNER,
    "Enterprise.correctionRequests": CORRECTIONS,
    **{f"Notification.{n}": OWNER for n in ("id", "kind", "title", "body", "at", "read")},
    **{
        f"CorrectionRequest.{name}": CORRECTIONS
        for name in (
            "id",
            "field",
            "proposedValue",
            "previousValue",
            "explanation",
            "state",
            "requestedAt",
            "resolvedAt",
            "note",
        )
    },
    "Mutation.requestCorrection": ("OWNER", ("corrections:request",)),
    "Mutation.resolveCorrection": ("OPERATOR", ("corrections:resolve",)),
    "Mutation.setServiceStatus": ("OPERATOR", ("service-status:write",)),
    "Mutation.markNotificationsRead": OWNER,
    "Mutation.recordDisclosure": ("OPERATOR", ()),
    "Subscription.notificationAdded": OWNER,
    # The audit trail: the enterprise and operators (clause 1.5, DESIGN §1).
    "Enterprise.accessLog": OWNER,
    **{
        f"AccessRecord.{name}": OWNER
        for name in (
            "id",
            "at",
            "kind",
            "viewerKind",
            "clientId",
            "platform",
            "fields",
            "purpose",
            "outcome",
            "authority",
            "legalBasis",
            "referenceNumber",
            "noticeDeferredUntil",
        )
    },
    # Payloads: what the guarded mutation answers.
    **{
        f"{payload}Payload.{name}": P
        for payload, names in {
            "RequestCorrection": ("correction",),
            "ResolveCorrection": ("correction",),
            "SetServiceStatus": ("serviceStatus",),
            "MarkNotificationsRead": ("marked", "unreadCount"),
            "RecordDisclosure": ("disclosure",),
        }.items()
        for name in ("clientMutationId", "replayed", *names)
        if name not in ("correction", "disclosure")
    },
    "RecordDisclosurePayload.disclosure": OWNER,
    "RequestCorrectionPayload.correction": CORRECTIONS,
    "ResolveCorrectionPayload.correction": CORRECTIONS,
}

PLUMBING_SUFFIXES = ("Connection", "Edge")
#: Null in FULL's archive for a reason other than visibility: its operating period is
#: open-ended and its service active (so no reason). tests/test_archive_tiers.py shows both.
NULL_FOR_FULL = {"OperatingPeriod.end", "ServiceStatus.reason"}


def _declared() -> dict[str, tuple[str, tuple[str, ...]] | None]:
    declared: dict[str, tuple[str, tuple[str, ...]] | None] = {}
    for name, graphql_type in schema._schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or name.startswith("__"):
            continue
        if name == "PageInfo" or name.endswith(PLUMBING_SUFFIXES):
            continue
        if name == "_Service":
            continue  # federation's: what `_service` answers (tests/test_federation.py)
        is_node = any(interface.name == "Node" for interface in graphql_type.interfaces)
        for field_name, field in graphql_type.fields.items():
            if name == "Query" and field_name in ROUTER_FIELDS:
                continue  # the router's, refused to viewers by validation, not by a tier
            if is_node and field_name == "id":
                continue  # the Relay id: visible exactly when its object is (see test_nodes)
            rule = field.extensions["strawberry-definition"].metadata.get("rule")
            declared[f"{name}.{field_name}"] = (
                (rule.tier.name, tuple(sorted(rule.scopes))) if rule is not None else None
            )
    return declared


def test_declared_tiers_match_the_agreement() -> None:
    assert _declared() == EXPECTED


def test_every_field_that_can_be_denied_can_be_nulled() -> None:
    """A denied field resolves to null, so it must be nullable, unless every field that
    leads to its type carries the same rule: then it is never reached when it would fail."""
    reaching: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for path, rule in EXPECTED.items():
        reaching.setdefault(_field_type(*path.split(".")), set()).add(rule)
    can_fail = []
    for path, rule in EXPECTED.items():
        type_name, field_name = path.split(".")
        field = schema._schema.type_map[type_name].fields[field_name]  # type: ignore[union-attr]
        guarded_like_parent = reaching.get(type_name, set()) == {rule}
        if rule != P and isinstance(field.type, GraphQLNonNull) and not guarded_like_parent:
            can_fail.append(path)
    assert can_fail == []


# Where each object type is reached from, as a selection with a hole for its fields.
WRAPPERS = {
    "Enterprise": "enterprise(uscc: $uscc) { %s }",
    "Region": "enterprise(uscc: $uscc) { region { %s } }",
    "OperatingPeriod": "enterprise(uscc: $uscc) { operatingPeriod { %s } }",
    "Money": "enterprise(uscc: $uscc) { registeredCapital { %s } }",
    "Shareholder": "enterprise(uscc: $uscc) { shareholders { edges { node { %s } } } }",
    "ChangeRecord": "enterprise(uscc: $uscc) { changeRecords { edges { node { %s } } } }",
    "LegalRepresentative": "enterprise(uscc: $uscc) { legalRepresentative { %s } }",
    "IdentityAuthentication": "enterprise(uscc: $uscc) { identityAuthentication { %s } }",
    "ServiceStatus": "enterprise(uscc: $uscc) { serviceStatus { %s } }",
    "IntegrityLevel": "enterprise(uscc: $uscc) { integrityLevel { %s } }",
    "PlatformFile": "enterprise(uscc: $uscc) { businessFiles { %s } }",
    "Store": "enterprise(uscc: $uscc) { businessFiles { stores { edges { node { %s } } } } }",
    "Chengxintong": "enterprise(uscc: $uscc) { businessFiles { chengxintong { %s } } }",
    "Certification": (
        "enterprise(uscc: $uscc) { businessFiles { certifications { edges { node { %s } } } } }"
    ),
    "RiskRecord": (
        "enterprise(uscc: $uscc) { businessFiles { riskRecords { edges { node { %s } } } } }"
    ),
    "IntegrityBadge": "integrityBadges(usccs: [$uscc]) { %s }",
}

VIEWERS: dict[str, dict[str, Any]] = {
    "anonymous": {},
    "member": {"role": "member"},
    "owner": {"role": "owner", "enterprise": FULL},
    "other-owner": {"role": "owner", "enterprise": OTHER},
    "service-no-scope": {"role": "service", "platform": "1688"},
    "service-all-scopes": {"role": "service", "scopes": list(ALL_SCOPES)},
    "operator": {"role": "operator"},
}

#: (tier, has scopes) -> viewer -> outcome; straight from the tier table of DESIGN §1.
OUTCOMES: dict[tuple[str, bool], dict[str, str]] = {
    ("PUBLIC", False): dict.fromkeys(VIEWERS, "ok"),
    ("MEMBER", False): {**dict.fromkeys(VIEWERS, "ok"), "anonymous": "UNAUTHENTICATED"},
    ("OWNER", False): {
        **dict.fromkeys(VIEWERS, "FORBIDDEN"),
        "anonymous": "UNAUTHENTICATED",
        "owner": "ok",
        "operator": "ok",
    },
    ("OWNER", True): {
        **dict.fromkeys(VIEWERS, "FORBIDDEN"),
        "anonymous": "UNAUTHENTICATED",
        "owner": "ok",
        "operator": "ok",
        "service-all-scopes": "ok",
    },
    ("SCOPE", True): {
        **dict.fromkeys(VIEWERS, "FORBIDDEN"),
        "anonymous": "UNAUTHENTICATED",
        "service-all-scopes": "ok",
    },
}


def _selection(type_name: str, field_name: str) -> str:
    graphql_type = schema._schema.type_map[type_name]
    field = graphql_type.fields[field_name]  # type: ignore[union-attr]
    if isinstance(get_named_type(field.type), GraphQLObjectType):
        return f"{field_name} {{ __typename }}"
    return field_name


def _values_at(data: Any, keys: list[str]) -> list[Any]:
    """Every value at a response path, descending through lists (and past nulls)."""
    values = [data]
    for key in keys:
        next_values = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            next_values += [item[key] for item in items if isinstance(item, dict)]
        values = next_values
    return values


@pytest.mark.parametrize("viewer", list(VIEWERS))
@pytest.mark.parametrize("type_name", list(WRAPPERS))
async def test_each_viewer_gets_exactly_what_its_tier_allows(
    client: httpx.AsyncClient, settings: Settings, type_name: str, viewer: str
) -> None:
    claims = VIEWERS[viewer]
    headers = bearer(settings, **claims) if claims else {}
    fields = [path.split(".")[1] for path in EXPECTED if path.split(".")[0] == type_name]
    selection = " ".join(_selection(type_name, name) for name in fields)
    variable = "String" if type_name == "IntegrityBadge" else "USCC"
    query = f"query($uscc: {variable}!) {{ " + WRAPPERS[type_name] % selection + " }"
    body = await graphql_as(client, headers, query, {"uscc": FULL})

    errors_by_field: dict[str, set[str]] = {}
    for error in body.get("errors", []):
        errors_by_field.setdefault(str(error["path"][-1]), set()).add(error["extensions"]["code"])

    for name in fields:
        tier, scopes = EXPECTED[f"{type_name}.{name}"]
        if _parent_outcome(type_name, viewer) != "ok":
            continue  # the parent is denied: that is the parent's own row
        expected = OUTCOMES[(tier, bool(scopes))][viewer]
        path = [*_data_keys(type_name), name]
        values = _values_at(body["data"], path)
        assert values, f"{type_name}.{name}: nothing to check for {viewer}"
        if expected == "ok":
            assert name not in errors_by_field, (type_name, name, viewer, body.get("errors"))
            if f"{type_name}.{name}" not in NULL_FOR_FULL:
                assert any(value is not None for value in values), (type_name, name, viewer)
        else:
            assert errors_by_field.get(name) == {expected}, (type_name, name, viewer)
            assert all(value is None for value in values)


def _data_keys(type_name: str) -> list[str]:
    """The response keys from the root down to ``type_name``'s objects."""
    wrapper = WRAPPERS[type_name]
    words = wrapper[: wrapper.rindex("%s")].replace("{", " ").replace("(", " ( ").split()
    keys, depth = [], 0
    for word in words:
        depth += word.count("(") - word.count(")")
        if depth == 0 and word.isidentifier():
            keys.append(word)
    return keys


def _parent_outcome(type_name: str, viewer: str) -> str:
    """What ``viewer`` gets for the fields that lead to ``type_name`` (worst of them)."""
    owner_type = "Query"
    for key in _data_keys(type_name):
        if key in ("edges", "node"):
            continue
        child = _field_type(owner_type, key)
        tier, scopes = EXPECTED[f"{owner_type}.{key}"]
        step = OUTCOMES[(tier, bool(scopes))][viewer]
        if step != "ok":
            return step
        owner_type = child
    return "ok"


def _field_type(type_name: str, field_name: str) -> str:
    field = schema._schema.type_map[type_name].fields[field_name]  # type: ignore[union-attr]
    named = get_named_type(field.type)
    if named.name.endswith("Connection"):
        return named.name.removesuffix("Connection")
    return named.name


SHARED_FRAGMENT = """query($a: USCC!, $b: USCC!) {
  x: enterprise(uscc: $a) { ...Level integrityLevel { grade } }
  y: enterprise(uscc: $b) { ...Level }
}
fragment Level on Enterprise { integrityLevel { grade } }"""


async def test_a_denial_is_located_at_every_node_of_its_own_field_only(
    client: httpx.AsyncClient,
) -> None:
    """One fragment's field met twice: merged with another node under ``x``, alone
    under ``y``. Each denial names the nodes of its own field, in every request (the
    located denial is kept across requests, by the field's nodes)."""
    for _ in range(2):
        body = await graphql_as(client, {}, SHARED_FRAGMENT, {"a": FULL, "b": OTHER})
        assert body == {
            "data": {"x": {"integrityLevel": None}, "y": {"integrityLevel": None}},
            "errors": [
                {
                    "message": "Log in to see integrityLevel (tier MEMBER).",
                    "locations": [{"line": 5, "column": 32}, {"line": 2, "column": 38}],
                    "path": ["x", "integrityLevel"],
                    "extensions": {"code": "UNAUTHENTICATED"},
                },
                {
                    "message": "Log in to see integrityLevel (tier MEMBER).",
                    "locations": [{"line": 5, "column": 32}],
                    "path": ["y", "integrityLevel"],
                    "extensions": {"code": "UNAUTHENTICATED"},
                },
            ],
        }


def test_a_denial_reads_as_the_error_graphql_core_would_locate() -> None:
    """Copies of one located denial (``Denied``) share all but their path; each reads,
    formats and compares as a GraphQLError located at its own path would."""
    document = parse('{ enterprise(uscc: "x") { integrityLevel { grade } } }')
    field = document.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    rule = Rule(Tier.MEMBER, frozenset())
    at_a = Path(Path(None, "a", "Query"), "integrityLevel", "Enterprise")
    at_b = Path(Path(None, "b", "Query"), "integrityLevel", "Enterprise")
    first = _denial(None, "integrityLevel", [field], at_a, rule, Decision.UNAUTHENTICATED)
    again = _denial(None, "integrityLevel", [field], at_a, rule, Decision.UNAUTHENTICATED)
    elsewhere = _denial(None, "integrityLevel", [field], at_b, rule, Decision.UNAUTHENTICATED)
    message = "Log in to see integrityLevel (tier MEMBER)."
    located = GraphQLError(message, [field], path=["a", "integrityLevel"])
    assert first.formatted == {
        "message": message,
        "locations": [{"line": 1, "column": 3}],
        "path": ["a", "integrityLevel"],
        "extensions": {"code": "UNAUTHENTICATED"},
    }
    assert elsewhere.formatted["path"] == ["b", "integrityLevel"]
    assert (first.message, first.locations, first.nodes, first.args) == (
        located.message, located.locations, located.nodes, (message,)
    )  # fmt: skip
    assert str(first) == str(located)
    assert first == again
    assert first != elsewhere
    assert first == {"message": message, "path": ["a", "integrityLevel"]}
    assert first != {"message": message, "path": ["b", "integrityLevel"]}
