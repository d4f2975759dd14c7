"""Visibility tiers, declared once per field, next to the field, and enforced (DESIGN §1).

``visible(tier, description, scopes=...)`` is the only way a field is declared in this
schema. It prints the tier as a ``@visibility`` directive in schema.graphql, and for any
tier but PUBLIC attaches ``VisibilityExtension``, which decides once per request for
each (rule, enterprise) and then only looks the decision up: a list of a hundred
enterprises costs one decision per field definition, not one per value. Compiled plans
(resolvers/plan.py) read an attribute field, or call an argument-less method, directly
and check the same rule through ``check_field``, as the extension would.

A denied field resolves to null with one error at its path: UNAUTHENTICATED for an
anonymous viewer, FORBIDDEN otherwise. So every non-PUBLIC field is nullable.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.pyutils import Path
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location

from gateway.viewer import Anonymous, Member, Operator, Owner, ServiceClient, Viewer

T = TypeVar("T")

__all__ = [
    "Decision",
    "Denied",
    "Rule",
    "Tier",
    "Visibility",
    "VisibilityExtension",
    "check_field",
    "check_platform_fields",
    "closed_to_viewer",
    "decide",
    "denied_at",
    "enforce",
    "field_denial",
    "field_rule",
    "fragment_definitions",
    "located_denial",
    "open_rules",
    "platform_hidden",
    "platform_middleware",
    "public_operation",
    "request_decision",
    "select_operation",
    "shut_rules",
    "visible",
]


@strawberry.enum(description="Who may see a field (DESIGN §1).")
class Tier(enum.Enum):
    PUBLIC = strawberry.enum_value("PUBLIC", description="Anyone, no login.")
    MEMBER = strawberry.enum_value(
        "MEMBER", description="Any logged-in viewer: member, owner, service client, operator."
    )
    OWNER = strawberry.enum_value(
        "OWNER",
        description=(
            "A viewer acting for this enterprise, and operators; also service clients "
            "holding one of the field's scopes."
        ),
    )
    SCOPE = strawberry.enum_value(
        "SCOPE", description="Only service clients holding one of the field's scopes."
    )
    OPERATOR = strawberry.enum_value(
        "OPERATOR",
        description="Internal staff; also service clients holding one of the field's scopes.",
    )


class Decision(enum.Enum):
    ALLOW = "allow"
    #: Allowed, and a sensitive read by someone other than the owner: audited.
    ALLOW_AUDITED = "allow_audited"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"


# Python 3.11's ``EnumType`` has a ``__getattr__``, so reading a member off its class
# (``Tier.PUBLIC``) takes the slow attribute path, some seventy nanoseconds here against six
# for a module name; a whole archive makes over a hundred such reads deciding its fields.
_PUBLIC, _MEMBER, _OWNER, _SCOPE = Tier.PUBLIC, Tier.MEMBER, Tier.OWNER, Tier.SCOPE
_ALLOW, _ALLOW_AUDITED = Decision.ALLOW, Decision.ALLOW_AUDITED
_UNAUTHENTICATED, _FORBIDDEN = Decision.UNAUTHENTICATED, Decision.FORBIDDEN


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """Compared and hashed by identity: each field declares its own, once, and the
    per-request decision cache looks rules up on every value it guards."""

    tier: Tier
    scopes: frozenset[str] = frozenset()
    #: Whether a read by anyone but the owner goes on the audit trail. Off only for
    #: the trail itself: reading who read is not reading the enterprise's data, and a
    #: record of it would tell the enterprise of a disclosure whose notice is deferred.
    audited: bool = True
    #: Whether the decision depends on the enterprise (OWNER tier).
    per_enterprise: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_enterprise", self.tier is Tier.OWNER)

    def describe(self) -> str:
        scopes = " or ".join(f"scope {scope}" for scope in sorted(self.scopes))
        if self.tier is Tier.SCOPE:
            return scopes
        return f"tier {self.tier.name}" + (f" or {scopes}" if scopes else "")


def decide(rule: Rule, viewer: Viewer, enterprise: str | None) -> Decision:
    """May ``viewer`` see a field guarded by ``rule`` on ``enterprise``'s archive?"""
    if rule.tier is _PUBLIC:
        return _ALLOW
    if isinstance(viewer, Anonymous):
        return _UNAUTHENTICATED
    if rule.tier is _MEMBER:
        return _ALLOW
    holds_scope = isinstance(viewer, ServiceClient) and not rule.scopes.isdisjoint(viewer.scopes)
    if rule.tier is _OWNER:
        if isinstance(viewer, Owner) and enterprise is not None and viewer.enterprise == enterprise:
            return _ALLOW
        if isinstance(viewer, Operator) or holds_scope:
            return _ALLOW_AUDITED
        return _FORBIDDEN
    if rule.tier is _SCOPE:
        return _ALLOW_AUDITED if holds_scope else _FORBIDDEN
    if isinstance(viewer, Operator):
        return _ALLOW
    # An operator's act that a service client may do under a scope (a write).
    return _ALLOW_AUDITED if holds_scope else _FORBIDDEN


def enforce(
    info: strawberry.Info,
    rule: Rule,
    enterprise: str | None,
    *,
    at_field: bool = False,
    item: tuple[int | None, str] | None = None,
) -> None:
    """Let the field at ``info.path`` through, auditing it if sensitive, or raise the
    denial. Decided once per request for each (rule, enterprise), then looked up.

    ``at_field``: the denial belongs at ``info.path`` itself (a field's own check), so
    it can be located once and shared; otherwise (an item of a list field) graphql-core
    locates it at the item. ``item``: a node's index in a list (or None) and its type
    name (``node``, ``nodes``), so an audited node is recorded as its type, at its own
    place."""
    raw = info._raw_info
    if at_field:
        check_field(
            info.context,
            rule,
            enterprise,
            raw.field_name,
            raw.field_nodes,
            raw.path,
            raw.parent_type.name,
        )
        return
    decision = request_decision(info.context, rule, enterprise)
    if decision is _ALLOW:
        return
    if decision is _ALLOW_AUDITED:
        path = tuple(raw.path.as_list())
        coordinate = f"{raw.parent_type.name}.{raw.field_name}"
        if item is not None:
            index, coordinate = item
            if index is not None:
                path = (*path, index)
        info.context.audit.read(enterprise, coordinate, path, rule.scopes)
        return
    raise GraphQLError(
        _denial_message(raw.field_name, rule, decision), extensions={"code": decision.value}
    )


def check_field(
    context: Any,
    rule: Rule,
    enterprise: str | None,
    field_name: str,
    field_nodes: list[FieldNode],
    path: Path,
    parent_type: str,
) -> None:
    """``enforce`` for the field at ``path`` itself, for callers that hold its parts
    rather than a Strawberry ``Info`` (the compiled plans of resolvers/plan.py)."""
    denied = field_denial(context, rule, enterprise, field_name, field_nodes, path, parent_type)
    if denied is not None:
        raise denied


def field_denial(
    context: Any,
    rule: Rule,
    enterprise: str | None,
    field_name: str,
    field_nodes: list[FieldNode],
    path: Path,
    parent_type: str,
) -> GraphQLError | None:
    """``check_field``'s verdict without raising it: the denial of the value at
    ``path``, or None when the viewer may see it (an audited read is recorded first).
    A caller that keeps the error itself spares the raise and its traceback."""
    decision = request_decision(context, rule, enterprise)
    if decision is _ALLOW:
        return None
    if decision is _ALLOW_AUDITED:
        context.audit.read(
            enterprise, f"{parent_type}.{field_name}", tuple(path.as_list()), rule.scopes
        )
        return None
    return _denial(context, field_name, field_nodes, path, rule, decision)


def open_to_viewer(context: Any, rule: Rule) -> bool:
    """Whether ``check_field`` lets every value guarded by ``rule`` through for this
    request's viewer, whatever the enterprise, with nothing to audit: a field such a
    rule guards need not be checked value by value (resolvers/plan.py)."""
    return not rule.per_enterprise and request_decision(context, rule, None) is _ALLOW


#: Decisions for anonymous viewers and members, by (rule, viewer class): they depend
#: on nothing else (no enterprise, no scope), so every request shares them.
_BY_CLASS: dict[tuple[Rule, type], Decision] = {}
#: ``open_to_viewer``'s answers for those same viewers, by their class, kept for every
#: request (``open_rules``).
_OPEN_BY_CLASS: dict[type, dict[Rule, bool]] = {Anonymous: {}, Member: {}}


def open_rules(viewer: Any) -> dict[Rule, bool]:
    """Where one request keeps ``open_to_viewer``'s answers: for an anonymous viewer or
    a member, the dictionary every request of its kind shares (the answers hang on the
    rule and that kind alone); else a fresh one."""
    return _kept_by_kind(_OPEN_BY_CLASS, viewer)


def closed_to_viewer(context: Any, rule: Rule) -> Decision | None:
    """The denial of every value ``rule`` guards, whatever the enterprise, for this
    request's viewer; None when some value might pass (or the viewer is of a kind whose
    decisions hang on more than its kind). Only anonymous viewers and members are
    decided by their kind alone (``request_decision``), so only they are ever shut out
    of a field whole."""
    if context.viewer.__class__ not in _OPEN_BY_CLASS:
        return None
    decision = request_decision(context, rule, None)
    return decision if decision is _UNAUTHENTICATED or decision is _FORBIDDEN else None


#: ``closed_to_viewer``'s answers for anonymous viewers and members, by their class.
_SHUT_BY_CLASS: dict[type, dict[Rule, Decision | None]] = {Anonymous: {}, Member: {}}


def shut_rules(viewer: Any) -> dict[Rule, Decision | None]:
    """Where one request keeps ``closed_to_viewer``'s answers: shared by kind, as
    ``open_rules``."""
    return _kept_by_kind(_SHUT_BY_CLASS, viewer)


def _kept_by_kind(tables: dict[type, dict[Rule, T]], viewer: Any) -> dict[Rule, T]:
    """The table every request of the viewer's kind shares, if its kind has one; else a
    fresh one for this request alone."""
    shared = tables.get(viewer.__class__)
    return {} if shared is None else shared


def request_decision(context: Any, rule: Rule, enterprise: str | None) -> Decision:
    """``decide`` for the request's viewer, made once per request for each rule (and
    enterprise, where the rule depends on it), or once for all requests of anonymous
    viewers and of members: an audited allowance of a rule that is not audited is a
    plain one."""
    viewer_class = context.viewer.__class__
    if viewer_class in _OPEN_BY_CLASS:  # an anonymous viewer or a member
        shared = _BY_CLASS.get((rule, viewer_class))
        if shared is None:
            shared = _BY_CLASS[rule, viewer_class] = decide(rule, context.viewer, None)
        return shared
    key = (rule, enterprise if rule.per_enterprise else None)
    decision: Decision | None = context.decisions.get(key)
    if decision is None:
        decision = decide(rule, context.viewer, enterprise)
        if decision is _ALLOW_AUDITED and not rule.audited:
            decision = _ALLOW
        context.decisions[key] = decision
    return decision


def _denial_message(field_name: str, rule: Rule, decision: Decision) -> str:
    if decision is Decision.UNAUTHENTICATED:
        return f"Log in to see {field_name} ({rule.describe()})."
    return f"{field_name} needs {rule.describe()}."


def _shared(name: str) -> property:
    """An attribute every copy of a denial reads off the error located once."""
    return property(lambda denied: getattr(denied._template, name))


#: What GraphQLError's equality compares.
_COMPARED = tuple(
    name for name in GraphQLError.__slots__ if name not in ("cause", "original_error")
)


class Denied(GraphQLError):
    """A denial: its field's located error (``_denial``) at one value's path. Only the
    path is its own; the rest it reads off the error located once for every copy, and
    it formats as that error would, its locations formatted once too."""

    __slots__ = ("_formatted_locations", "_template")

    _template: GraphQLError
    _formatted_locations: list[Any]
    message = _shared("message")
    locations = _shared("locations")
    nodes = _shared("nodes")
    source = _shared("source")
    positions = _shared("positions")
    original_error = _shared("original_error")
    extensions = _shared("extensions")
    cause = _shared("cause")

    def __eq__(self, other: object) -> bool:
        """GraphQLError's equality, over the attributes a denial reads and its path."""
        if isinstance(other, GraphQLError):
            return other.__class__ is Denied and all(
                getattr(self, name) == getattr(other, name) for name in _COMPARED
            )
        return (
            isinstance(other, dict)
            and "message" in other
            and all(name in _COMPARED and getattr(self, name) == other.get(name) for name in other)
        )

    __hash__ = GraphQLError.__hash__

    @property
    def formatted(self) -> Any:
        template = self._template
        if self._formatted_locations and template.extensions:  # every denial located
            return {
                "message": template.message,
                "locations": list(self._formatted_locations),
                "path": self.path,
                "extensions": template.extensions,
            }
        formatted: dict[str, Any] = {"message": template.message}
        if template.locations is not None:
            formatted["locations"] = list(self._formatted_locations)
        if self.path is not None:
            formatted["path"] = self.path
        if template.extensions:
            formatted["extensions"] = template.extensions
        return formatted


#: Located denials by (field nodes, rule, decision): the nodes, the error located once
#: and its formatted locations.
_DENIALS: dict[
    tuple[tuple[int, ...], Rule, int],
    tuple[tuple[FieldNode, ...], GraphQLError, list[Any]],
] = {}
#: Enough for every denied field of the documents the parse cache holds.
_DENIALS_KEPT = 4096


def _denial(
    context: Any,
    field_name: str,
    field_nodes: list[FieldNode],
    path: Path,
    rule: Rule,
    decision: Decision,
) -> GraphQLError:
    """The denial of the value at ``path``, located in the document.

    graphql-core would locate a plain error anew for each value (scanning the query
    text each time); every denial at one field node of a cached document shares one
    located error, in every request, a copy of which (``Denied``) carries each value's
    path, which graphql-core then keeps as is. (The nodes are kept with their error, so
    ids reused by other nodes after their document left the cache are never taken for
    them.)
    """
    return denied_at(located_denial(field_name, field_nodes, rule, decision), path)


#: A field's denial located once: the error and its formatted locations.
Located = tuple[GraphQLError, list[Any]]


def located_denial(
    field_name: str, field_nodes: list[FieldNode], rule: Rule, decision: Decision
) -> Located:
    """The located error every denial at these field nodes shares (``_denial``)."""
    # The decision by its id (members live as long as their class): an Enum hashes,
    # and gives its ``value``, in Python.
    key = (tuple(map(id, field_nodes)), rule, id(decision))
    found = _DENIALS.get(key)
    if found is None or not all(map(operator.is_, found[0], field_nodes)):
        message = _denial_message(field_name, rule, decision)
        template = GraphQLError(message, field_nodes, extensions={"code": decision.value})
        locations = [location.formatted for location in template.locations or ()]
        if len(_DENIALS) >= _DENIALS_KEPT:
            _DENIALS.clear()
        found = _DENIALS[key] = (tuple(field_nodes), template, locations)
    return found[1], found[2]


def denied_at(located: Located, path: Path) -> Denied:
    """A copy of a located denial at the value at ``path``."""
    template, locations = located
    denied = Denied.__new__(Denied, template.message)
    denied._template = template
    denied._formatted_locations = locations
    denied.path = path.as_list()
    return denied


def fragment_definitions(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The document's fragments, by name."""
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def field_rule(field: GraphQLField) -> Rule | None:
    """The rule ``visible`` declared for a field of the built schema (None: not ours,
    e.g. a Relay ``PageInfo`` field, which is public)."""
    definition = field.extensions.get("strawberry-definition")
    rule: Rule | None = definition.metadata.get("rule") if definition is not None else None
    return rule


def select_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation a request runs: the named one, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def public_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> bool:
    """Whether every field the (validated) operation selects is PUBLIC: its answer to
    an anonymous viewer is the same for every anonymous viewer, so it may be cached."""
    fragments = fragment_definitions(document)
    operation = select_operation(document, operation_name)
    if operation is None:
        return False

    def public(node: SelectionSetNode | None, parent: Any, seen: frozenset[str]) -> bool:
        if node is None:
            return True
        for child in node.selections:
            if isinstance(child, FieldNode):
                if child.name.value.startswith("__"):
                    continue
                field = getattr(parent, "fields", {}).get(child.name.value)
                if field is None:
                    return False
                rule = field_rule(field)
                if rule is not None and rule.tier is not Tier.PUBLIC:
                    return False
                if not public(child.selection_set, get_named_type(field.type), seen):
                    return False
            elif isinstance(child, InlineFragmentNode):
                condition = child.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                if not public(child.selection_set, target, seen):
                    return False
            elif isinstance(child, FragmentSpreadNode) and child.name.value not in seen:
                found = fragments.get(child.name.value)
                if found is None:
                    return False
                target = schema.get_type(found.type_condition.name.value)
                if not public(found.selection_set, target, seen | {child.name.value}):
                    return False
        return True

    return public(operation.selection_set, schema.get_root_type(operation.operation), frozenset())


class VisibilityExtension(FieldExtension):
    """Enforces one field's rule against the request's viewer.

    Objects with OWNER-tier fields carry their enterprise's USCC as ``enterprise_uscc``
    (a root field takes it from its ``uscc`` argument); an object without it never
    matches an owner, so a forgotten attribute denies.
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def _check(self, source: Any, info: strawberry.Info, arguments: dict[str, Any]) -> None:
        # The enterprise the field belongs to: its object's, or a root field's argument.
        enterprise = getattr(source, "enterprise_uscc", None) or arguments.get("uscc")
        enforce(info, self.rule, enterprise, at_field=True)

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        self._check(source, info, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: strawberry.Info,
        **kwargs: Any,
    ) -> Any:
        self._check(source, info, kwargs)
        return await next_(source, info, **kwargs)


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description=(
        "Who may see this field: its tier, and the service-client scopes that also "
        "grant it. A viewer below the tier gets null and an UNAUTHENTICATED or "
        "FORBIDDEN error at the field's path."
    ),
)
class Visibility:
    tier: Tier
    scopes: list[str] | None = strawberry.UNSET


def visible(
    tier: Tier,
    description: str,
    *,
    scopes: Sequence[str] = (),
    enforced_by_resolver: bool = False,
    audited: bool = True,
    **kwargs: Any,
) -> Any:
    """A Strawberry field (or resolver decorator) with its visibility declared.

    ``enforced_by_resolver``: the resolver checks the rule itself (a subscription,
    whose source stream the extension cannot wrap). ``audited``: see ``Rule``."""
    rule = Rule(tier, frozenset(scopes), audited)
    extensions: list[FieldExtension] = (
        [] if tier is Tier.PUBLIC or enforced_by_resolver else [VisibilityExtension(rule)]
    )
    return strawberry.field(
        description=description,
        directives=[Visibility(tier=tier, scopes=sorted(scopes) or strawberry.UNSET)],
        extensions=extensions,
        metadata={"rule": rule},
        **kwargs,
    )


# --- what a platform shows (service agreement clause 1.14) ----------------------------


def platform_hidden(context: Any) -> frozenset[str]:
    """The fields the viewer's platform does not show (PLATFORM_HIDDEN_FIELDS), as
    Type.field; empty for a viewer without a platform claim."""
    platform = getattr(context.viewer, "platform", None)
    if platform is None:
        return frozenset()
    return frozenset(context.settings.platform_hidden_fields.get(platform, ()))


def platform_middleware(context: Any) -> Callable[..., Any] | None:
    """A graphql-core middleware that denies, like a tier, the fields the viewer's
    platform does not show: null with FORBIDDEN at the field's path. None when the
    platform hides nothing (then the operation runs as for anyone)."""
    hidden = platform_hidden(context)
    if not hidden:
        return None
    platform = context.viewer.platform

    def deny_hidden(next_: Callable[..., Any], root: Any, info: Any, **arguments: Any) -> Any:
        if f"{info.parent_type.name}.{info.field_name}" in hidden:
            raise GraphQLError(
                f"{info.field_name} is not shown to viewers of platform {platform} "
                "(its field set, service agreement clause 1.14).",
                extensions={"code": Decision.FORBIDDEN.value},
            )
        return next_(root, info, **arguments)

    return deny_hidden


def check_platform_fields(schema: GraphQLSchema, hidden: dict[str, list[str]]) -> None:
    """Each hidden field is a field of the schema; ValueError if not. (A hidden field
    that cannot be null takes its nearest nullable parent with it, as GraphQL says a
    non-null field's error does.)"""
    for platform, coordinates in hidden.items():
        for coordinate in coordinates:
            type_name, _, field_name = coordinate.partition(".")
            found = schema.get_type(type_name)
            if field_name not in getattr(found, "fields", {}):
                raise ValueError(
                    f"PLATFORM_HIDDEN_FIELDS[{platform}]: {coordinate} is not a field of the schema"
                )
