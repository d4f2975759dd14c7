"""The committed schema is the contract: it must match the code and show every tier.

That every field declares the right tier is tests/test_visibility.py's job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resolvers.integrity import ServiceState, service_state
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


def test_a_stored_value_reads_as_its_enum_member_and_any_other_is_refused() -> None:
    assert [service_state(state.value) for state in ServiceState] == list(ServiceState)
    for stored in ("PAUSED", "active", None, ["ACTIVE"]):
        with pytest.raises(ValueError, match="is not a valid ServiceState"):
            service_state(stored)
