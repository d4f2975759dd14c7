"""The committed schema is the contract: it must match the code and show every tier.

That every field declares the right tier is tests/test_visibility.py's job.
"""

from __future__ import annotations

from pathlib import Path

from resolvers.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.as_str() + "\n", (
        "schema.graphql is stale; regenerate it with "
        "`integrity-gateway export-schema --output schema.graphql`"
    )


def test_tiers_are_printed_for_frontend_teams() -> None:
    text = schema.as_str()
    assert "directive @visibility(tier: Tier!, scopes: [String!]) on FIELD_DEFINITION" in text
    assert "  name: String! @visibility(tier: PUBLIC)\n" in text
    assert '@visibility(tier: OWNER, scopes: ["risk:read"])' in text
