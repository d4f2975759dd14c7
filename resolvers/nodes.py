"""Relay object identification: ``node(id:)`` and ``nodes(ids:)``.

A lookup by id is not a way around a tier: each node type has the rule of the field it
is normally reached through, checked with the same ``enforce`` as the fields, and a
platform record's id names its platform so the lookup goes to that source only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry import relay
from strawberry.relay import GlobalID, GlobalIDValueError

from loaders.base import SourceLoader
from loaders.codes import UsccError, validate_uscc
from loaders.platforms import PlatformLoaders
from resolvers.archive import ChangeRecord, Enterprise
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.permissions import Rule, Tier, enforce, visible
from resolvers.platforms import (
    RISK_READ,
    Certification,
    RiskRecord,
    Store,
    split_platform_key,
)

__all__ = ["MAX_NODES", "NodeQuery"]

MAX_NODES = 100


@dataclass(frozen=True, slots=True)
class NodeKind:
    #: Who may look the node up: the rule of the field it is normally reached through.
    rule: Rule
    load: Callable[[Info, str], Awaitable[Any]]


async def _enterprise(info: Info, key: str) -> Enterprise | None:
    try:
        uscc = validate_uscc(key)
    except UsccError:
        return None
    doc = await info.context.loaders.enterprise_by_uscc.load(uscc)
    return Enterprise.from_document(doc) if doc is not None else None


async def _change_record(info: Info, key: str) -> ChangeRecord | None:
    doc = await info.context.loaders.change_record_by_id.load(key)
    return ChangeRecord.from_document(doc) if doc is not None else None


def _platform_record(
    pick: Callable[[PlatformLoaders], SourceLoader | None], build: Callable[..., Any]
) -> Callable[[Info, str], Awaitable[Any]]:
    async def load(info: Info, key: str) -> Any:
        parsed = split_platform_key(key)
        if parsed is None:
            return None
        source, doc_id = parsed
        loader = pick(info.context.loaders.platforms[source])
        doc = await loader.load(doc_id) if loader is not None else None
        return build(source, doc) if doc is not None else None

    return load


NODE_KINDS: dict[str, NodeKind] = {
    "Enterprise": NodeKind(Rule(Tier.PUBLIC), _enterprise),
    "ChangeRecord": NodeKind(Rule(Tier.PUBLIC), _change_record),
    "Store": NodeKind(
        Rule(Tier.MEMBER), _platform_record(lambda p: p.store_by_id, Store.from_document)
    ),
    "Certification": NodeKind(
        Rule(Tier.MEMBER),
        _platform_record(lambda p: p.certification_by_id, Certification.from_document),
    ),
    "RiskRecord": NodeKind(
        Rule(Tier.OWNER, frozenset({RISK_READ})),
        _platform_record(lambda p: p.risk_record_by_id, RiskRecord.from_document),
    ),
}


async def _node(info: Info, raw: str, label: str, index: int | None = None) -> relay.Node | None:
    try:
        global_id = GlobalID.from_id(raw)
    except GlobalIDValueError:
        raise bad_user_input(f"{label} is not an id of this API") from None
    kind = NODE_KINDS.get(global_id.type_name)
    if kind is None:
        raise bad_user_input(f"{label} names no type of node: {global_id.type_name!r}")
    item = (index, global_id.type_name)
    if not kind.rule.per_enterprise:
        enforce(info, kind.rule, None, item=item)  # before any lookup
    node = await kind.load(info, global_id.node_id)
    if node is not None and kind.rule.per_enterprise:
        enforce(info, kind.rule, node.enterprise_uscc, item=item)
    result: relay.Node | None = node
    return result


@strawberry.type
class NodeQuery:
    @visible(
        Tier.PUBLIC,
        "The object with this id, if it exists and the viewer may see objects of its type; "
        "a type above the viewer's tier is null with UNAUTHENTICATED or FORBIDDEN.",
    )
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        return await _node(info, id, "id")

    @visible(
        Tier.PUBLIC,
        f"Up to {MAX_NODES} objects by id, in input order; each is checked like `node`, "
        "and a bad id is an error at its own index.",
    )
    def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise bad_user_input(f"at most {MAX_NODES} ids per call, got {len(ids)}")
        items = [_node(info, raw, f"ids[{index}]", index) for index, raw in enumerate(ids)]
        return items  # type: ignore[return-value]  # each item resolves on its own
