"""Every operation is measured before it runs (DESIGN §7), in one schema extension.

Order matters, and is the reason this is one extension rather than a stack of
Strawberry's limiters: the shape checks (depth, aliases, root fields, directives,
field selections, operations per document) run on the parsed document *before* graphql-core's
validation, whose overlapping-fields rule is quadratic in the fields of a selection;
the token limit stops the parser itself (the parse option Strawberry's
``MaxTokensLimiter`` sets); parses and validations are cached (as ``ParserCache`` and
``ValidationCache`` do, which this replaces: their errors carry no code); then
the operation's cost is computed on the validated document with fragments expanded,
checked against the viewer kind's budget, and spent against the client's rate limit.
Each refusal is one error with its own ``extensions.code`` and the limit in its
message; the HTTP view turns it into a 4xx. The cost goes out in ``extensions.cost``.

Cost: every object a field can return counts its type's weight (1, or ``TYPE_WEIGHTS``),
multiplied by the list sizes above it.
A size is an argument (``first``, or the length of ``usccs`` / ``ids``), the argument's
default, or for a list without one its declared size (``LIST_SIZES``). A connection's
``first`` sizes the lists under it (``edges``), not the connection object itself.
Scalars are free. So ``integrityBadges(usccs: [100 codes]) { name }`` costs 100 × 10 and
``enterprises(first: 10) { edges { node { name } } }`` costs 1 + 10 + 10 × 10.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
    parse,
)
from graphql.language import Lexer, Source, TokenKind
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from gateway.limits import OperationBudget
from gateway.viewer import Operator
from resolvers.errors import ErrorCode
from resolvers.permissions import public_operation, select_operation

__all__ = [
    "LIST_SIZES",
    "TYPE_WEIGHTS",
    "OperationLimits",
    "Shape",
    "operation_cost",
    "operation_shape",
]

#: Arguments whose value is the size of the list a field returns (or, on a
#: connection, of the lists under it).
SIZE_ARGUMENTS = ("first", "usccs", "ids")
#: Lists of objects that take no size argument, and how long they can be.
LIST_SIZES = {"businessFiles": 4}
#: What one object of a type costs; every other type costs 1. An enterprise is what the
#: service agreement forbids harvesting (clause 2.2(2)), so each one a response can
#: carry costs ten times a part of one: a crawler pays per enterprise, a person reading
#: an archive page pays mostly for its parts. An abstract type costs its dearest member.
TYPE_WEIGHTS = {"Enterprise": 10, "IntegrityBadge": 10}
#: Introspection is governed by its own rule (operators and dev mode only, in
#: production); its fields are not counted in depth or cost.
_INTROSPECTION = ("__schema", "__type")


class LimitError(GraphQLError):
    """An operation refused by a limit; its code names the limit."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, extensions={"code": code.value})


@dataclass(frozen=True, slots=True)
class Shape:
    """What an operation looks like, fragments expanded (every spread counted)."""

    depth: int = 0
    aliases: int = 0
    root_fields: int = 0
    directives: int = 0
    #: Field selections, leaves included: graphql-core's overlapping-fields check is
    #: quadratic in them, so they are bounded before it runs.
    fields: int = 0


def _combine(shapes: Iterator[Shape]) -> Shape:
    depth = aliases = directives = fields = 0
    for shape in shapes:
        depth = max(depth, shape.depth)
        aliases += shape.aliases
        directives += shape.directives
        fields += shape.fields
    return Shape(depth=depth, aliases=aliases, directives=directives, fields=fields)


def operation_shape(document: DocumentNode, operation_name: str | None) -> Shape:
    """The shape of the operation that would run; safe on an invalid document (unknown
    fragments count nothing, a fragment cycle is cut), and linear in the document
    however often fragments are spread."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = select_operation(document, operation_name)
    if operation is None:
        return Shape()

    @functools.cache
    def fragment(name: str) -> Shape:
        found = fragments.get(name)
        if found is None or name in visiting:
            return Shape()
        visiting.add(name)
        try:
            own = len(found.directives or ())
            inner = selections(found.selection_set)
            return Shape(inner.depth, inner.aliases, 0, inner.directives + own, inner.fields)
        finally:
            visiting.discard(name)

    visiting: set[str] = set()

    def selections(node: SelectionSetNode | None) -> Shape:
        if node is None:
            return Shape()
        return _combine(selection(child) for child in node.selections)

    def selection(node: Any) -> Shape:
        own = len(node.directives or ())
        if isinstance(node, FieldNode):
            aliased = int(node.alias is not None)
            if node.name.value in _INTROSPECTION:
                return Shape(depth=1, aliases=aliased, directives=own, fields=1)
            inner = selections(node.selection_set)
            return Shape(
                inner.depth + 1,
                inner.aliases + aliased,
                0,
                inner.directives + own,
                inner.fields + 1,
            )
        if isinstance(node, FragmentSpreadNode):
            inner = fragment(node.name.value)
        else:
            inner = selections(node.selection_set)
        return Shape(inner.depth, inner.aliases, 0, inner.directives + own, inner.fields)

    whole = selections(operation.selection_set)
    return Shape(
        depth=whole.depth,
        aliases=whole.aliases,
        root_fields=_root_fields(operation.selection_set, fragments, set()),
        directives=whole.directives + len(operation.directives or ()),
        fields=whole.fields,
    )


def _root_fields(
    node: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> int:
    count = 0
    for child in node.selections:
        if isinstance(child, FieldNode):
            count += 1
        elif isinstance(child, InlineFragmentNode):
            count += _root_fields(child.selection_set, fragments, seen)
        elif isinstance(child, FragmentSpreadNode) and child.name.value not in seen:
            found = fragments.get(child.name.value)
            if found is not None:
                count += _root_fields(found.selection_set, fragments, seen | {child.name.value})
    return count


def _count_tokens(query: str, limit: int) -> int:
    """How many tokens the document has, counting no further than ``limit + 1``."""
    lexer = Lexer(Source(query))
    count = 0
    while count <= limit:
        if lexer.advance().kind is TokenKind.EOF:
            break
        count += 1
    return count


#: Operations up to this long are parsed and validated once and cached (an app's
#: operations are far shorter); a longer one is parsed each time. A parsed document
#: takes about a hundred times its text in memory, so this and the cache size bound
#: what unique texts can make the caches hold (256 × 4 KiB × ~100 ≈ 100 MB at worst).
CACHED_QUERY_CHARS = 4096
_CACHE_SIZE = 256


def _parse(query: str, max_tokens: int) -> DocumentNode | tuple[ErrorCode, str] | None:
    if len(query) <= CACHED_QUERY_CHARS:
        return _parse_cached(query, max_tokens)
    return _parse_document(query, max_tokens)


def _parse_document(query: str, max_tokens: int) -> DocumentNode | tuple[ErrorCode, str] | None:
    """The parsed document (cached, as Strawberry's ``ParserCache`` would), or the
    refusal of a document over the token limit, or ``None`` for a syntax error (the
    executor parses again and reports it as graphql-core words it). The parser stops
    at the limit, so an oversized document costs no more than a permitted one."""
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLError:
        try:
            too_many = _count_tokens(query, max_tokens) > max_tokens
        except GraphQLError:
            too_many = False  # a lexical error before the limit: reported as it is
        if too_many:
            return (
                ErrorCode.TOO_MANY_TOKENS,
                f"The document has more than {max_tokens} tokens; at most {max_tokens} allowed.",
            )
        return None


def _argument_value(
    node: ValueNode | None, variables: Mapping[str, Any], default: Any = None
) -> Any:
    if node is None:
        return default
    if isinstance(node, VariableNode):
        return variables.get(node.name.value, default)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, ListValueNode):
        return list(node.values)
    return default


def _size(
    node: FieldNode, definition: Any, variables: Mapping[str, Any], pending: int | None
) -> tuple[int, int | None]:
    """The field's own multiplier, and the size it passes to the lists under it."""
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    explicit: int | None = None
    for name in SIZE_ARGUMENTS:
        if name in definition.args:
            value = _argument_value(given.get(name), variables, definition.args[name].default_value)
            if isinstance(value, list):
                explicit = len(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                explicit = max(value, 0)
    field_type: GraphQLOutputType = definition.type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if not isinstance(field_type, GraphQLList):
        # A single object; a connection's `first` sizes the lists under it.
        return 1, explicit
    if explicit is not None:
        return explicit, None
    if pending is not None:
        return pending, None
    return LIST_SIZES.get(node.name.value, 1), None


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """Objects × list sizes for a *validated* document (see the module docstring)."""
    operation = select_operation(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    values = variables or {}

    def weight(named: Any) -> int:
        if isinstance(named, GraphQLObjectType):
            return TYPE_WEIGHTS.get(named.name, 1)
        return max((weight(member) for member in schema.get_possible_types(named)), default=1)

    def cost(node: SelectionSetNode | None, parent: Any, pending: int | None) -> int:
        if node is None:
            return 0
        total = 0
        for child in node.selections:
            if isinstance(child, FieldNode):
                name = child.name.value
                if name.startswith("__") or not isinstance(
                    parent, GraphQLObjectType | GraphQLInterfaceType
                ):
                    continue
                definition = parent.fields.get(name)
                if definition is None:
                    continue
                named = get_named_type(definition.type)
                if not is_composite_type(named):
                    continue
                size, passed = _size(child, definition, values, pending)
                total += size * (weight(named) + cost(child.selection_set, named, passed))
            elif isinstance(child, InlineFragmentNode):
                condition = child.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                total += cost(child.selection_set, target, pending)
            elif isinstance(child, FragmentSpreadNode):
                found = fragments.get(child.name.value)
                if found is not None:
                    target = schema.get_type(found.type_condition.name.value)
                    total += cost(found.selection_set, target, pending)
        return total

    return cost(operation.selection_set, root, None)


def _measure(document: DocumentNode, operation_name: str | None) -> tuple[int, Shape]:
    """How many operations the document holds, and the selected one's shape."""
    operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    return operations, operation_shape(document, operation_name)


_parse_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_parse_document)
#: Keyed by the (cached, so identical) document object and the operation name.
_measure_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_measure)
_public_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(public_operation)
#: Keyed by the document: only cached (short) documents are validated through it.
_validate_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(validate_document)


def _refusal(budget: OperationBudget, shape: Shape, operations: int) -> LimitError | None:
    checks = (
        (operations, budget.operations, ErrorCode.TOO_MANY_OPERATIONS, "operations"),
        (shape.depth, budget.depth, ErrorCode.DEPTH_LIMIT_EXCEEDED, "levels of nesting"),
        (shape.aliases, budget.aliases, ErrorCode.TOO_MANY_ALIASES, "aliases"),
        (shape.root_fields, budget.root_fields, ErrorCode.TOO_MANY_ROOT_FIELDS, "root fields"),
        (shape.directives, budget.directives, ErrorCode.TOO_MANY_DIRECTIVES, "directives"),
        (shape.fields, budget.fields, ErrorCode.TOO_MANY_FIELDS, "field selections"),
    )
    for found, allowed, code, what in checks:
        if found > allowed:
            return LimitError(code, f"The operation has {found} {what}; at most {allowed} allowed.")
    return None


class OperationLimits(SchemaExtension):
    """Measures, refuses, prices and charges an operation before it executes."""

    def _budget(self) -> OperationBudget:
        budget: OperationBudget = self.execution_context.context.limits.operation
        return budget

    def on_operation(self) -> Iterator[None]:
        execution_context = self.execution_context
        context = execution_context.context
        if not (context.settings.gateway_dev_mode or isinstance(context.viewer, Operator)):
            # In production the schema is not published to anonymous viewers and members.
            execution_context.validation_rules = (
                *execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield

    def on_parse(self) -> Iterator[None]:
        execution_context = self.execution_context
        query = execution_context.query
        parsed = _parse(query, self._budget().tokens) if query is not None else None
        if isinstance(parsed, tuple):
            # Raised from the hook, Strawberry answers with this error alone.
            raise LimitError(*parsed)
        if isinstance(parsed, DocumentNode):
            execution_context.graphql_document = parsed
        yield

    async def on_validate(self) -> Any:
        execution_context = self.execution_context
        context = execution_context.context
        document = execution_context.graphql_document
        budget = self._budget()
        assert document is not None
        query = execution_context.query or ""
        cached = len(query) <= CACHED_QUERY_CHARS
        measure = _measure_cached if cached else _measure
        operations, shape = measure(document, execution_context.operation_name)
        refusal = _refusal(budget, shape, operations)
        if refusal is not None:
            execution_context.pre_execution_errors = [refusal]
            yield
            return
        validate = _validate_cached if cached else validate_document
        errors = validate(
            execution_context.schema._schema, document, tuple(execution_context.validation_rules)
        )
        execution_context.pre_execution_errors = list(errors)
        if errors:
            yield
            return
        cost = operation_cost(
            execution_context.schema._schema,
            document,
            execution_context.operation_name,
            execution_context.variables,
        )
        report = context.report
        report.cost = cost
        report.public = (_public_cached if cached else public_operation)(
            execution_context.schema._schema, document, execution_context.operation_name
        )
        allowed = budget.cost[context.viewer.kind]
        if cost > allowed:
            execution_context.pre_execution_errors = [
                LimitError(
                    ErrorCode.COST_LIMIT_EXCEEDED,
                    f"The operation costs {cost}; at most {allowed} allowed for this viewer "
                    f"({context.viewer.kind}). Ask for fewer objects or smaller pages.",
                )
            ]
            yield
            return
        allowance = await context.limits.spend(context.viewer, context.client_address, cost)
        report.allowance = allowance
        if not allowance.allowed:
            execution_context.pre_execution_errors = [
                LimitError(
                    ErrorCode.RATE_LIMITED,
                    f"Rate limit {allowance.limit} (cost units) reached; retry in "
                    f"{allowance.retry_after}s.",
                )
            ]
        yield

    def get_results(self) -> dict[str, Any]:
        report = self.execution_context.context.report
        if report.cost is None:
            return {}
        return {
            "cost": {
                "requested": report.cost,
                "limit": self._budget().cost[self.execution_context.context.viewer.kind],
            }
        }
