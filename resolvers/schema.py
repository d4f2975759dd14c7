"""The one place the schema is composed: one query mixin per domain."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from resolvers.archive import ArchiveQuery
from resolvers.badges import BadgeQuery
from resolvers.errors import is_expected_error
from resolvers.identity import IdentityQuery
from resolvers.limits import OperationLimits
from resolvers.nodes import NodeQuery
from resolvers.scalars import SCALAR_MAP
from resolvers.search import SearchQuery

__all__ = ["create_schema", "schema"]

log = logging.getLogger("integrity_gateway.errors")


@strawberry.type(description="Enterprise integrity archives. Each field states who may see it.")
class Query(ArchiveQuery, SearchQuery, BadgeQuery, NodeQuery, IdentityQuery):
    pass


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors only, and never the query text: its arguments may
        carry personal data (an ID number to verify) that must not reach a log."""
        context = execution_context.context if execution_context is not None else None
        request_id = getattr(context, "request_id", "-")
        for error in errors:
            if not is_expected_error(error):
                log.error(
                    "unexpected error at %s (request %s)",
                    ".".join(map(str, error.path or ())) or "-",
                    request_id,
                    exc_info=error.original_error,
                )


def create_schema() -> strawberry.Schema:
    return GatewaySchema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            # Strawberry builds each extension per request. OperationLimits parses
            # and validates (both cached, shared by every request) and measures.
            OperationLimits,
            lambda: MaskErrors(
                should_mask_error=lambda error: not is_expected_error(error),
                error_message="Internal error; it has been logged.",
            ),
        ],
    )


schema = create_schema()
