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
from collections.abc import Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from graphql.language import Lexer, Source, TokenKind
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from gateway.limits import OperationBudget
from gateway.viewer import Anonymous, Operator
from resolvers.errors import ErrorCode
from resolvers.limits.cost import LIST_SIZES, TYPE_WEIGHTS, operation_cost
from resolvers.limits.shape import Shape, operation_shape
from resolvers.permissions import public_operation

__all__ = [
    "LIST_SIZES",
    "TYPE_WEIGHTS",
    "OperationLimits",
    "Shape",
    "operation_cost",
    "operation_shape",
]


class LimitError(GraphQLError):
    """An operation refused by a limit; its code names the limit."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, extensions={"code": code.value})


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
        if context.http_method == "GET" and isinstance(context.viewer, Anonymous):
            # Only an anonymous GET answer may be shared, so only it is looked at.
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
