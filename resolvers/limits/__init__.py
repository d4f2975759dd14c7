"""Every operation is measured before it runs (DESIGN §7): ``measure`` here, called by
the engine (resolvers/engine.py) before anything executes.

Order matters, and is the reason this is one step rather than a stack of
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
from collections.abc import Sequence
from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, parse
from graphql.language import Lexer, Source, TokenKind
from graphql.validation import ASTValidationRule
from strawberry.schema.schema import validate_document

from gateway.limits import OperationBudget
from resolvers.errors import ErrorCode
from resolvers.limits.cost import LIST_SIZES, TYPE_WEIGHTS, cached_cost, operation_cost
from resolvers.limits.shape import Shape, operation_shape
from resolvers.permissions import public_operation

__all__ = [
    "LIST_SIZES",
    "TYPE_WEIGHTS",
    "LimitError",
    "Measured",
    "Shape",
    "cached_cost",
    "cached_document",
    "cost_refusal",
    "measure",
    "operation_cost",
    "operation_shape",
    "public_cached",
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
    refusal of a document over the token limit, or ``None`` for a syntax error
    (``measure`` parses again to report it as graphql-core words it). The parser stops
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


def cached_document(query: str, max_tokens: int) -> DocumentNode:
    """The cached parse of a short document ``measure`` has accepted."""
    document = _parse_cached(query, max_tokens)
    assert isinstance(document, DocumentNode)
    return document


# The caches below are keyed by the document's text, not by the parsed document: a
# DocumentNode hashes by walking its whole tree (~15 µs for a small query, on every
# lookup), a string once.


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _measure_cached(query: str, max_tokens: int, operation_name: str | None) -> tuple[int, Shape]:
    return _measure(cached_document(query, max_tokens), operation_name)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _validate_cached(
    schema: GraphQLSchema,
    query: str,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
) -> list[GraphQLError]:
    return validate_document(schema, cached_document(query, max_tokens), rules)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def public_cached(
    schema: GraphQLSchema, query: str, max_tokens: int, operation_name: str | None
) -> bool:
    """``public_operation`` of a short document, cached by its text."""
    return public_operation(schema, cached_document(query, max_tokens), operation_name)


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


@dataclass(frozen=True, slots=True)
class Measured:
    """A document measured and validated: ``errors`` refuse it (a limit's, or
    validation's); ``cached`` says whether the document object is the shared, cached
    one (so per-document work may be cached on it too)."""

    document: DocumentNode
    errors: Sequence[GraphQLError]
    cached: bool
    #: The text and the token limit it was parsed under: what per-document caches key by.
    query: str
    tokens: int


def measure(
    schema: GraphQLSchema,
    query: str,
    operation_name: str | None,
    budget: OperationBudget,
    rules: tuple[type[ASTValidationRule], ...],
) -> Measured | GraphQLError:
    """Parse (stopping at the token limit), check the shape, then validate, in that
    order, each step cached for short documents. A syntax error or the token limit is
    returned alone: there is no document to go on with."""
    cached = len(query) <= CACHED_QUERY_CHARS
    parsed = (
        _parse_cached(query, budget.tokens) if cached else _parse_document(query, budget.tokens)
    )
    if isinstance(parsed, tuple):
        return LimitError(*parsed)
    if parsed is None:
        try:
            parse(query)
        except GraphQLError as syntax:
            return syntax
        raise AssertionError("a document that failed to parse parsed")  # pragma: no cover
    operations, shape = (
        _measure_cached(query, budget.tokens, operation_name)
        if cached
        else _measure(parsed, operation_name)
    )
    refusal = _refusal(budget, shape, operations)
    if refusal is not None:
        return Measured(parsed, [refusal], cached, query, budget.tokens)
    errors = (
        _validate_cached(schema, query, budget.tokens, rules)
        if cached
        else validate_document(schema, parsed, rules)
    )
    return Measured(parsed, errors, cached, query, budget.tokens)


def cost_refusal(cost: int, allowed: int, kind: str) -> LimitError | None:
    """The refusal of an operation that costs more than the viewer kind may spend."""
    if cost <= allowed:
        return None
    return LimitError(
        ErrorCode.COST_LIMIT_EXCEEDED,
        f"The operation costs {cost}; at most {allowed} allowed for this viewer "
        f"({kind}). Ask for fewer objects or smaller pages.",
    )
