"""One GraphQL operation, from its text to the response body (DESIGN §3, §7).

The HTTP view hands over a read, authenticated request; the engine measures and
validates the document (resolvers/limits), prices it, charges the client's rate limit,
executes it, and shapes the answer: unexpected errors logged (never with the query
text) and masked, ``extensions.cost`` added. A cached query runs while its charge travels
to Redis with its first read (what it may do before the charge admits it:
``ChargeGate``). Strawberry builds the schema and its resolvers; this replaces its
per-request pipeline, whose extension hooks cost more than everything they wrapped here.

Execution: a query whose document is cached runs on its compiled plan
(resolvers/plan.py), which calls the same resolvers as graphql-core would without
its per-field machinery; anything the plan does not cover runs on graphql-core's
executor, which stays the reference (tests/test_plan.py runs both on generated
operations for every viewer kind and compares the answers).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any, cast

import strawberry
from graphql import (
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    specified_rules,
    subscribe,
)
from graphql.execution import MiddlewareManager
from graphql.language import FieldNode
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationRule
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.utils.await_maybe import await_maybe
from strawberry.utils.operation import get_first_operation

from gateway.limits import Charge
from gateway.sources import GATE, ChargeGate
from gateway.viewer import Anonymous, Operator, ServiceClient
from resolvers.context import Context
from resolvers.errors import ErrorCode, is_expected_error
from resolvers.limits import (
    LimitError,
    Measured,
    cached_cost,
    cost_refusal,
    measure,
    operation_cost,
    public_cached,
)
from resolvers.permissions import (
    Denied,
    platform_middleware,
    public_operation,
    select_operation,
)
from resolvers.plan import Plan, compiled_plan

__all__ = ["Engine", "OperationRefused"]

log = logging.getLogger("integrity_gateway.errors")

MASKED_MESSAGE = "Internal error; it has been logged."
_OPERATION_WORDS = {
    OperationType.QUERY: "queries",
    OperationType.MUTATION: "mutations",
    OperationType.SUBSCRIPTION: "subscriptions",
}
#: Apollo Federation's root fields, for a supergraph's router.
ROUTER_FIELDS = frozenset(("_service", "_entities"))


class RouterFieldsRule(ValidationRule):
    """``_service`` and ``_entities`` answer a supergraph's router, a service client: to
    anyone else in production they are refused, as introspection is, so they neither
    publish the schema nor look enterprises up by a side door."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.context.get_parent_type()
        if parent is not None and parent.name == "Query" and node.name.value in ROUTER_FIELDS:
            self.report_error(
                GraphQLError(
                    f"{node.name.value} answers a supergraph's router (a service client) only.",
                    node,
                    extensions={"code": "FORBIDDEN"},
                )
            )


_RULES = tuple(specified_rules)
#: In production the schema is not published to anonymous viewers and members.
_RULES_WITHOUT_INTROSPECTION = (*_RULES, NoSchemaIntrospectionCustomRule)
_RULES_FOR_VIEWERS = (*_RULES_WITHOUT_INTROSPECTION, RouterFieldsRule)


class OperationRefused(Exception):
    """A request that is not a runnable GraphQL operation at all: answered with its
    own HTTP status and code, outside GraphQL's response shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _body(
    data: Any, errors: Collection[GraphQLError], extensions: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = [error.formatted for error in errors]
    if extensions:
        body["extensions"] = extensions
    return body


def _forget_traceback(error: GraphQLError) -> None:
    """Drop the tracebacks of an error, of its original and of the exceptions they were
    raised from or while handling, which would keep the frames that raised them, and
    what they hold, alive in a cycle only the collector frees. A denial never raised
    (``field_denial``) holds none."""
    if error.__class__ is Denied and error.__traceback__ is None:
        return
    for start in (error, error.original_error):
        exception: BaseException | None = start
        for _ in range(_CHAINED):
            if exception is None:
                break
            exception.__traceback__ = None
            exception = exception.__cause__ or exception.__context__


#: How far along a chain of exceptions their tracebacks are dropped.
_CHAINED = 8


def _log_and_mask(errors: list[GraphQLError], request_id: str) -> list[GraphQLError]:
    """Log unexpected errors only, and never the query text (its arguments may carry
    personal data, an ID number to verify); send them without their words."""
    shown: list[GraphQLError] = []
    for error in errors:
        if error.__class__ is Denied and error.__traceback__ is None:  # kept, never raised
            shown.append(error)
            continue
        if is_expected_error(error):
            shown.append(error)
            _forget_traceback(error)
            continue
        log.error(
            "unexpected error at %s (request %s)",
            ".".join(map(str, error.path or ())) or "-",
            request_id,
            exc_info=error.original_error,
        )
        _forget_traceback(error)  # logged: what raised it may now be freed
        shown.append(
            GraphQLError(
                MASKED_MESSAGE,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
            )
        )
    return shown


class Engine:
    """Runs operations against one Strawberry schema."""

    def __init__(self, schema: strawberry.Schema) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema

    async def run(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        allowed: Collection[OperationType],
        extensions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The response body (``data``, ``errors``, ``extensions``) of one operation.

        Raises ``OperationRefused`` for a request without a runnable operation."""
        prepared = self._prepare(query, operation_name, context, allowed)
        if isinstance(prepared, dict):
            return prepared
        measured = prepared
        cost = self._price(measured, operation_name, variables, context)
        priced = self._priced(context)
        if isinstance(cost, LimitError):
            return _body(None, [cost], priced)
        charge = context.limits.charge(context.viewer, context.client_address, cost)
        plan = self._plan(measured, operation_name, context)
        if plan is None:
            refusal = await self._admit(charge, context)
            if refusal is not None:
                return _body(None, [refusal], priced)
            result = await self._execute(measured, operation_name, variables, context, extensions)
        else:
            # Run while the charge travels with the first read (DESIGN §7): nothing reads a
            # source or writes before it admits the request (ChargeGate).
            gate = ChargeGate()
            gate.hold(charge.answer)
            held = GATE.set(gate)
            try:
                result = await plan.run(variables, context, extensions)
            finally:
                GATE.reset(held)
            refusal = await self._admit(charge, context)
            if refusal is not None:
                context.audit.clear()  # nothing it read is served
                return _body(None, [refusal], priced)
        errors = _log_and_mask(result.errors, context.request_id) if result.errors else []
        return _body(result.data, errors, priced)

    async def subscribe(
        self,
        query: str | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """A subscription's stream of response bodies, or the body of its refusal;
        measured, priced and charged like an operation over HTTP. Raises
        ``OperationRefused`` for a request without a runnable subscription."""
        prepared = self._prepare(query, operation_name, context, {OperationType.SUBSCRIPTION})
        if isinstance(prepared, dict):
            return prepared
        cost = self._price(prepared, operation_name, variables, context)
        if isinstance(cost, LimitError):
            refusal: LimitError | None = cost
        else:
            charge = context.limits.charge(context.viewer, context.client_address, cost)
            refusal = await self._admit(charge, context)
        if refusal is not None:
            return _body(None, [refusal], self._priced(context))
        deny_hidden = platform_middleware(context)
        outcome = await await_maybe(
            subscribe(
                self.graphql_schema,
                prepared.document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                middleware=MiddlewareManager(deny_hidden) if deny_hidden else None,
            )
        )
        if isinstance(outcome, ExecutionResult):
            errors = _log_and_mask(outcome.errors or [], context.request_id)
            return _body(None, errors)
        return self._bodies(cast("AsyncIterator[ExecutionResult]", outcome), context)

    async def _bodies(
        self, results: AsyncIterator[ExecutionResult], context: Context
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for result in results:
                errors = _log_and_mask(result.errors, context.request_id) if result.errors else []
                yield _body(result.data, errors)
        finally:
            closer = getattr(results, "aclose", None)
            if closer is not None:
                await closer()

    def _prepare(
        self,
        query: str | None,
        operation_name: str | None,
        context: Context,
        allowed: Collection[OperationType],
    ) -> Measured | dict[str, Any]:
        """Measure and validate the document and pick its operation: the measured
        operation, or the body of its refusal."""
        if not query:
            raise OperationRefused(400, "BAD_REQUEST", "No GraphQL query found in the request.")
        viewer = context.viewer
        limits = context.limits.operation
        if context.settings.gateway_dev_mode or isinstance(viewer, Operator):
            rules = _RULES
        elif isinstance(viewer, ServiceClient):
            rules = _RULES_WITHOUT_INTROSPECTION  # a router: federation, not introspection
        else:
            rules = _RULES_FOR_VIEWERS
        measured = measure(self.graphql_schema, query, operation_name, limits, rules)
        if isinstance(measured, GraphQLError):
            return _body(None, [measured])
        document = measured.document
        operation = (
            select_operation(document, operation_name)
            if operation_name is not None
            else get_first_operation(document)
        )
        if operation is None:
            raise OperationRefused(
                400,
                "BAD_REQUEST",
                "Can't get GraphQL operation type"
                if operation_name is None
                else f'Unknown operation named "{operation_name}".',
            )
        if operation.name is not None:
            context.report.operation_name = operation.name.value
        if operation.operation not in allowed:
            if operation.operation is OperationType.SUBSCRIPTION:
                raise OperationRefused(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "subscriptions are served over WebSocket (graphql-transport-ws) at "
                    "this same path",
                )
            raise OperationRefused(
                405,
                "METHOD_NOT_ALLOWED",
                f"{_OPERATION_WORDS[operation.operation]} are not allowed when using "
                f"{context.http_method}",
            )
        if measured.errors:
            return _body(None, measured.errors)
        return measured

    @staticmethod
    def _priced(context: Context) -> dict[str, Any]:
        limit = context.limits.operation.cost[context.viewer.kind]
        return {"cost": {"requested": context.report.cost, "limit": limit}}

    def _price(
        self,
        measured: Measured,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Context,
    ) -> int | LimitError:
        """The operation's cost (also in ``context.report``), or its refusal when it
        costs more than the viewer kind may spend at once."""
        schema, document = self.graphql_schema, measured.document
        viewer = context.viewer
        # A cached document is priced once for each set of sizes its variables give.
        price = cached_cost if measured.cached else operation_cost
        cost = price(schema, document, operation_name, variables)
        report = context.report
        report.cost = cost
        if context.http_method == "GET" and isinstance(viewer, Anonymous):
            # Only an anonymous GET answer may be shared, so only it is looked at.
            report.public = (
                public_cached(schema, measured.query, measured.tokens, operation_name)
                if measured.cached
                else public_operation(schema, document, operation_name)
            )
        refusal = cost_refusal(cost, context.limits.operation.cost[viewer.kind], viewer.kind)
        return cost if refusal is None else refusal

    @staticmethod
    async def _admit(charge: Charge, context: Context) -> LimitError | None:
        """What the client's rate limit made of the operation's cost: None when it was
        spent, else the refusal."""
        allowance = await context.limits.allowance(charge)
        context.report.allowance = allowance
        if allowance.allowed:
            return None
        return LimitError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit {allowance.limit} (cost units) reached; retry in "
            f"{allowance.retry_after}s.",
        )

    def _plan(
        self, measured: Measured, operation_name: str | None, context: Context
    ) -> Plan | None:
        """The compiled plan of a query whose document is cached, when it may run on
        one (a platform that shows less runs on the reference executor)."""
        if not measured.cached or platform_middleware(context) is not None:
            return None
        return compiled_plan(self.graphql_schema, measured.query, measured.tokens, operation_name)

    async def _execute(
        self,
        measured: Measured,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Context,
        extensions: dict[str, Any] | None,
    ) -> ExecutionResult:
        """An operation no plan runs, on the reference executor."""
        deny_hidden = platform_middleware(context)
        return await self.reference(
            measured,
            operation_name,
            variables,
            context,
            extensions,
            [deny_hidden] if deny_hidden is not None else None,
        )

    async def reference(
        self,
        measured: Measured,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Context,
        extensions: dict[str, Any] | None = None,
        middleware: list[Any] | None = None,
    ) -> ExecutionResult:
        """graphql-core's executor, as Strawberry would call it."""
        result = await await_maybe(
            execute(
                self.graphql_schema,
                measured.document,
                variable_values=variables,
                operation_name=operation_name,
                context_value=context,
                middleware=middleware,
                executor_class=StrawberryGraphQLCoreExecutionContext,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                operation_extensions=extensions,
            )
        )
        assert isinstance(result, ExecutionResult)
        return result
