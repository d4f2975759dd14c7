"""Generated operations, every viewer kind: no 500, no unmasked error, no field beyond
the viewer's tier. Operations come from hypothesis-graphql over the printed schema,
with USCC arguments drawn from the seeded registry so lookups find real archives."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import (
    FieldNode,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    parse,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from hypothesis_graphql import strategies as gql

from gateway.settings import Settings
from gateway.viewer import Anonymous, Member, Operator, Owner, ServiceClient, Viewer
from resolvers.engine import ROUTER_FIELDS
from resolvers.permissions import Decision, decide, field_rule
from resolvers.schema import schema
from tests.conftest import bearer
from tests.test_archive import HANGZHOU, INDIVIDUAL
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")

GRAPHQL = schema._schema
USCCS = st.sampled_from([HANGZHOU, INDIVIDUAL, FULL]).map(nodes.String)
MASKED = "Internal error; it has been logged."

VIEWERS: dict[str, tuple[Viewer, dict[str, Any]]] = {
    "anonymous": (Anonymous(), {}),
    "member": (Member(subject="fuzz-member"), {}),
    "owner": (Owner(subject="fuzz-owner", enterprise=HANGZHOU), {"enterprise": HANGZHOU}),
    "service": (
        ServiceClient(subject="fuzz-service", scopes=frozenset({"identity:read"})),
        {"scopes": ["identity:read"]},
    ),
    "operator": (Operator(subject="fuzz-operator"), {}),
}


def beyond_tier(
    viewer: Viewer, data: Any, selection: SelectionSetNode | None, parent: Any, path: str
) -> list[str]:
    """Response paths holding a value the viewer's tier does not allow."""
    if selection is None or data is None:
        return []
    if isinstance(data, list):
        return [
            found
            for index, item in enumerate(data)
            for found in beyond_tier(viewer, item, selection, parent, f"{path}.{index}")
        ]
    found: list[str] = []
    for node in selection.selections:
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            target = GRAPHQL.get_type(condition.name.value) if condition else parent
            found += beyond_tier(viewer, data, node.selection_set, target, path)
            continue
        if not isinstance(node, FieldNode) or not isinstance(parent, GraphQLObjectType):
            continue
        key = node.alias.value if node.alias else node.name.value
        if key not in data or node.name.value.startswith("__"):
            continue
        field = parent.fields.get(node.name.value)
        rule = field_rule(field) if field is not None else None
        # An owner's OWNER-tier fields depend on the enterprise: other tests pin those.
        owners_own = isinstance(viewer, Owner) and rule is not None and rule.per_enterprise
        denied = (Decision.UNAUTHENTICATED, Decision.FORBIDDEN)
        if rule is not None and not owners_own and decide(rule, viewer, None) in denied:
            if data[key] is not None:
                found.append(f"{path}.{key}")
            continue
        child = get_named_type(parent.fields[node.name.value].type)
        found += beyond_tier(viewer, data[key], node.selection_set, child, f"{path}.{key}")
    return found


#: Operations over the schema, USCCs drawn from the seeded registry.
#: (The router's federation fields are refused to viewers, and tested on their own.)
QUERIES = gql.queries(
    schema._schema,
    fields=[name for name in schema._schema.query_type.fields if name not in ROUTER_FIELDS],
    custom_scalars={"USCC": USCCS},
)
#: How many operations each viewer kind gets (hypothesis runs inside async tests).
GENERATED = hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", list(VIEWERS))
@GENERATED
@given(data=st.data())
async def test_generated_operations_never_fail_the_server_or_the_tiers(
    client: httpx.AsyncClient, settings: Settings, kind: str, data: st.DataObject
) -> None:
    query = data.draw(QUERIES)
    viewer, claims = VIEWERS[kind]
    headers = (
        {} if kind == "anonymous" else bearer(settings, kind, subject=viewer.subject, **claims)
    )
    response = await client.post("/graphql", json={"query": query}, headers=headers)

    assert response.status_code < 500, response.text
    body = response.json()
    for error in body.get("errors", ()):
        assert error["message"] != MASKED, (query, error)
        if "path" in error:
            assert "code" in error.get("extensions", {}), (query, error)
    operation = next(d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode))
    leaks = beyond_tier(viewer, body.get("data"), operation.selection_set, GRAPHQL.query_type, "")
    assert leaks == [], (query, leaks)
