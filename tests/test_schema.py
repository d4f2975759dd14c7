"""The committed schema is the contract: it must match the code, and declare every tier."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLObjectType

from resolvers.permissions import Tier
from resolvers.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
#: Relay plumbing: visible exactly when the field returning the connection is.
PLUMBING_SUFFIXES = ("Connection", "Edge")


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.as_str() + "\n", (
        "schema.graphql is stale; regenerate it with "
        "`integrity-gateway export-schema --output schema.graphql`"
    )


def _declared_tiers() -> dict[str, Tier | None]:
    tiers = {}
    for name, graphql_type in schema._schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or name.startswith("__"):
            continue
        if name == "PageInfo" or name.endswith(PLUMBING_SUFFIXES):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = field.extensions["strawberry-definition"]
            rule = definition.metadata.get("rule")
            tiers[f"{name}.{field_name}"] = rule.tier if rule is not None else None
    return tiers


def test_every_field_declares_a_visibility_tier() -> None:
    tiers = _declared_tiers()
    assert "Enterprise.registeredCapital" in tiers
    assert [path for path, tier in tiers.items() if tier is None] == []


def test_tiers_are_printed_for_frontend_teams() -> None:
    text = schema.as_str()
    assert "directive @visibility(tier: Tier!, scopes: [String!]) on FIELD_DEFINITION" in text
    assert "  name: String! @visibility(tier: PUBLIC)\n" in text
