"""The one place the schema is composed: one query mixin per domain, the writes and
the live notifications."""

from __future__ import annotations

import strawberry
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.types.info import Info

from resolvers.archive import ArchiveQuery
from resolvers.badges import BadgeQuery
from resolvers.errors import bad_user_input
from resolvers.identity import IdentityQuery
from resolvers.mutations import Mutation
from resolvers.nodes import NodeQuery
from resolvers.notices import NotificationSubscription
from resolvers.pagination import use_schema_edges
from resolvers.scalars import SCALAR_MAP
from resolvers.search import SearchQuery

__all__ = ["create_schema", "schema"]


@strawberry.type(description="Enterprise integrity archives. Each field states who may see it.")
class Query(ArchiveQuery, SearchQuery, BadgeQuery, NodeQuery, IdentityQuery):
    pass


#: Entities a router may ask for in one ``_entities`` call (as ``nodes`` and badges).
MAX_ENTITIES = 100


class Subgraph(strawberry.federation.Schema):
    """The Federation 2 subgraph. ``_entities`` takes only what a router sends for this
    schema's one entity, ``{__typename: "Enterprise", uscc}``, at most ``MAX_ENTITIES``
    at once; anything else is BAD_USER_INPUT before any lookup."""

    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        if len(representations) > MAX_ENTITIES:
            raise bad_user_input(
                f"at most {MAX_ENTITIES} representations per call, got {len(representations)}",
                argument="representations",
            )
        for index, representation in enumerate(representations):
            if (
                not isinstance(representation, dict)
                or set(representation) != {"__typename", "uscc"}
                or representation["__typename"] != "Enterprise"
                or not isinstance(representation["uscc"], str)
            ):
                raise bad_user_input(
                    f'representations[{index}] must be {{"__typename": "Enterprise", '
                    '"uscc": <USCC>}',
                    argument="representations",
                )
        return super().entities_resolver(info, representations)


def create_schema() -> strawberry.Schema:
    """The schema: its types and resolvers. Operations run through resolvers/engine.py,
    which measures, prices, executes and masks them."""
    # An Apollo Federation 2 subgraph: Enterprise is an entity keyed by its USCC.
    built = Subgraph(
        query=Query,
        federation_version="2.5",
        mutation=Mutation,
        subscription=NotificationSubscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )
    use_schema_edges(built._schema)
    return built


schema = create_schema()
