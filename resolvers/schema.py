"""The one place the schema is composed: one query mixin per domain, the writes and
the live notifications."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers.archive import ArchiveQuery
from resolvers.badges import BadgeQuery
from resolvers.identity import IdentityQuery
from resolvers.mutations import Mutation
from resolvers.nodes import NodeQuery
from resolvers.notices import NotificationSubscription
from resolvers.scalars import SCALAR_MAP
from resolvers.search import SearchQuery

__all__ = ["create_schema", "schema"]


@strawberry.type(description="Enterprise integrity archives. Each field states who may see it.")
class Query(ArchiveQuery, SearchQuery, BadgeQuery, NodeQuery, IdentityQuery):
    pass


def create_schema() -> strawberry.Schema:
    """The schema: its types and resolvers. Operations run through resolvers/engine.py,
    which measures, prices, executes and masks them."""
    # An Apollo Federation 2 subgraph: Enterprise is an entity keyed by its USCC.
    return strawberry.federation.Schema(
        query=Query,
        federation_version="2.5",
        mutation=Mutation,
        subscription=NotificationSubscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )


schema = create_schema()
