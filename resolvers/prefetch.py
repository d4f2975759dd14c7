"""Loading ahead: what the selection of an enterprise will need, in one step.

A field that awaits a loader costs graphql-core a task and an abort check, and Strawberry
an async wrapper; an archive page has a dozen such fields, four times over for the
platforms. A resolver that returns enterprises (``enterprise``, a search page) looks at
what was selected under them, loads it for every enterprise at once, and the fields then
find their documents already loaded (``SourceLoader.then``) and resolve without a task.
Nothing here decides what anyone may see: fields above the viewer's tier are simply not
loaded ahead, and every field still enforces its own tier when it runs. A source that
fails leaves its error in the loader, and the field that needs it raises it at its path.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from gateway.viewer import Owner
from loaders.base import SourceLoader, load_together
from loaders.platforms import CERTIFYING_PLATFORMS, PLATFORMS
from resolvers.context import Info
from resolvers.permissions import Decision, field_rule, request_decision

__all__ = ["may_see", "prefetch_enterprises", "selections"]

Selections = dict[str, list[SelectionSetNode]]


def selections(
    nodes: Iterable[SelectionSetNode | None], fragments: Mapping[str, FragmentDefinitionNode]
) -> Selections:
    """The fields selected in ``nodes`` (fragments merged in), each with the selection
    sets under it. Not to be changed: the same answer serves every request of a cached
    document (remembered by the nodes, which are the document's own, kept with it so
    that ids reused after the document left the parse cache are never taken for them)."""
    given = tuple(node for node in nodes if node is not None)
    key = tuple(map(id, given))
    found = _SELECTIONS.get(key)
    if found is not None and all(map(operator.is_, found[0], given)):
        return found[1]
    selected = _selections(given, fragments)
    if len(_SELECTIONS) >= _SELECTIONS_KEPT:
        _SELECTIONS.clear()
    _SELECTIONS[key] = (given, selected)
    return selected


#: ``selections`` by the ids of the nodes: the nodes, and what they select.
_SELECTIONS: dict[tuple[int, ...], tuple[tuple[SelectionSetNode, ...], Selections]] = {}
#: Enough for the selections of every document the parse cache holds.
_SELECTIONS_KEPT = 4096


def _selections(
    nodes: tuple[SelectionSetNode, ...], fragments: Mapping[str, FragmentDefinitionNode]
) -> Selections:
    found: Selections = {}
    pending = list(nodes)
    seen: set[str] = set()
    while pending:
        for child in pending.pop().selections:
            if isinstance(child, FieldNode):
                subsets = found.setdefault(child.name.value, [])
                if child.selection_set is not None:
                    subsets.append(child.selection_set)
            elif isinstance(child, FragmentSpreadNode):
                fragment = fragments.get(child.name.value)
                if fragment is not None and child.name.value not in seen:
                    seen.add(child.name.value)
                    pending.append(fragment.selection_set)
            elif isinstance(child, InlineFragmentNode):
                pending.append(child.selection_set)
    return found


_DENIED = (Decision.UNAUTHENTICATED, Decision.FORBIDDEN)


def may_see(info: Info, type_name: str, field_name: str) -> bool:
    """Whether the viewer may see the field somewhere (an owner's own enterprise
    counts): only such fields are loaded ahead. The field still checks for itself."""
    field = info.schema._schema.type_map[type_name].fields[field_name]  # type: ignore[attr-defined]
    rule = field_rule(field)
    if rule is None:
        return True
    viewer = info.context.viewer
    if rule.per_enterprise and isinstance(viewer, Owner):
        return True
    decision = request_decision(info.context, rule, None)
    return decision not in _DENIED


async def prefetch_enterprises(
    info: Info,
    usccs: list[str],
    selected: Selections,
    *,
    also: Sequence[tuple[SourceLoader, list[str]]] = (),
    guarded: bool = False,
) -> list[dict[Hashable, Any]]:
    """Load, for every enterprise in ``usccs``, the documents ``selected`` will need
    (and what ``also`` asks of other loaders, in the same step). ``guarded``: the
    enterprises themselves are loaded in the same step, and the rest only for those
    that exist (``load_together``'s guard). Returns what ``also`` asked for, as
    ``load_together`` gives it (key -> document, None or the error its field raises),
    one mapping per request of ``also``."""
    if not usccs:
        return await load_together(also)
    loaders = info.context.loaders
    fragments = info._raw_info.fragments
    loads: list[tuple[SourceLoader, list[str]]] = list(also)
    if "identityAuthentication" in selected:
        loads.append((loaders.authentication_by_uscc, usccs))
    level = "integrityLevel" in selected and may_see(info, "Enterprise", "integrityLevel")
    if "serviceStatus" in selected or level:
        loads.append((loaders.service_status_by_uscc, usccs))
    if level:
        loads.append((loaders.integrity_level_by_uscc, usccs))
    if "changeRecords" in selected:
        loads.append((loaders.change_records_by_uscc, usccs))
    representative = selections(selected.get("legalRepresentative", []), fragments)
    if "maskedIdNumber" in representative and may_see(
        info, "LegalRepresentative", "maskedIdNumber"
    ):
        loads.append((loaders.legal_representative_by_uscc, usccs))
    if "businessFiles" in selected and may_see(info, "Enterprise", "businessFiles"):
        files = selections(selected["businessFiles"], fragments)
        risks = "riskRecords" in files and may_see(info, "PlatformFile", "riskRecords")
        for source in PLATFORMS:
            platform = loaders.platforms[source]
            loads.append((platform.statistics, usccs))
            if "stores" in files:
                loads.append((platform.stores, usccs))
            if "certifications" in files and source in CERTIFYING_PLATFORMS:
                loads.append((platform.certifications, usccs))  # type: ignore[arg-type]
            if "chengxintong" in files and platform.chengxintong is not None:
                loads.append((platform.chengxintong, usccs))
            if risks:
                loads.append((platform.risk_records, usccs))
    # One MGET for all; a failed source is left in its loader for the fields that need it.
    guard = (loaders.enterprise_by_uscc, usccs) if guarded else None
    results = await load_together(loads, guard=guard)
    first = 1 if guard is not None else 0
    return results[first : first + len(also)]
