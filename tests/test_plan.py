"""Compiled plans against graphql-core's executor, the reference: the same operation,
the same viewer, the same stores must give the same ``data`` and the same errors
(message, path, locations, code), for generated operations and every viewer kind,
and for hand-written ones that reach what generation rarely does (abstract types,
fragments, aliases, denials inside lists, variables), and on a small schema of its own
for nulls propagating through non-null fields and lists."""

from __future__ import annotations

import asyncio
import enum
import gc
import weakref
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLError,
    OperationType,
    parse,
    specified_rules,
)
from graphql.execution.values import get_variable_values
from graphql.pyutils import Path
from hypothesis import given
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.graphql_view import _document_order, in_document_order, request_context
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings
from gateway.viewer import Anonymous, Member, Operator, Owner, ServiceClient, Viewer
from resolvers.engine import Engine
from resolvers.limits import Measured, measure
from resolvers.permissions import Decision, Rule, Tier, closed_to_viewer, visible
from resolvers.plan import _WRITTEN_AFTER, Completion, compile_plan, compiled_plan
from resolvers.schema import schema
from tests.test_archive import HANGZHOU, INDIVIDUAL
from tests.test_fuzz import GENERATED, QUERIES, VIEWERS
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")

ENGINE = Engine(schema)
RULES = tuple(specified_rules)


@pytest.fixture(scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as opened:
        yield opened


def _answer(result: ExecutionResult) -> tuple[Any, list[dict[str, Any]]]:
    errors = [error.formatted for error in result.errors or ()]
    return result.data, sorted(errors, key=_document_order)


async def both(
    runtime: Runtime, viewer: Viewer, query: str, variables: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """The plan's answer and the reference's, each with its own request context: the
    plan's the same whether its selections run as written functions or not."""
    measured = measure(ENGINE.graphql_schema, query, None, runtime.limits.operation, RULES)
    assert isinstance(measured, Measured) and not measured.errors, measured
    plan = compiled_plan(ENGINE.graphql_schema, query, measured.tokens, None)
    assert plan is not None, query
    answers = []
    for run in ("interpreted", "written", "reference"):
        context = request_context(
            runtime, viewer, request_id=run, http_method="POST", client_address="-"
        )
        if run == "reference":
            result = await ENGINE.reference(measured, None, variables, context)
        else:
            result = await plan.run(variables, context, written=run == "written")
        answers.append(_answer(result))
    interpreted, written, reference = answers
    assert written == interpreted, query
    return written, reference


@pytest.mark.parametrize("kind", list(VIEWERS))
@GENERATED
@given(data=st.data())
async def test_generated_operations_answer_as_graphql_core_does(
    runtime: Runtime, kind: str, data: st.DataObject
) -> None:
    query = data.draw(QUERIES)
    viewer, _claims = VIEWERS[kind]
    planned, reference = await both(runtime, viewer, query)
    assert planned == reference, query


BADGES = """query($u: [String!]!) { integrityBadges(usccs: $u) {
  uscc name verified grade gradeLabel serviceState updatedAt } }"""
NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
  ... on Enterprise { name integrityLevel { grade } ...Owned }
  ... on Node { id } } }
fragment Owned on Enterprise { legalRepresentative { name maskedIdNumber }
  identityAuthentication { verified status } }"""
ALIASED = f"""{{ a: enterprise(uscc: "{HANGZHOU}") {{ n: name kind t: __typename
  region {{ code name }} files: businessFiles {{ platform storeCount
    stores(first: 2) {{ edges {{ cursor node {{ name }} }} pageInfo {{ hasNextPage }} }} }} }}
  b: enterprise(uscc: "{INDIVIDUAL}") {{ name changeRecords {{ edges {{ node {{ item }} }} }} }}
  missing: enterprise(uscc: "913300000000000004") {{ name }} }}"""
SEARCH = """{ enterprises(first: 3) { edges { cursor node { uscc name
  serviceStatus { state } integrityLevel { grade } } } pageInfo { hasNextPage endCursor } } }"""


@pytest.mark.parametrize("kind", list(VIEWERS))
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (BADGES, {"u": [HANGZHOU, "not-a-code", INDIVIDUAL, "913300000000000004", FULL]}),
        (ALIASED, None),
        (SEARCH, None),
    ],
    ids=["badges", "aliased", "search"],
)
async def test_hand_written_operations_answer_as_graphql_core_does(
    runtime: Runtime, kind: str, query: str, variables: dict[str, Any] | None
) -> None:
    viewer, _claims = VIEWERS[kind]
    planned, reference = await both(runtime, viewer, query, variables)
    assert planned == reference
    data, errors = planned
    if query is BADGES:
        badges = data["integrityBadges"]
        assert [badge["uscc"] if badge else None for badge in badges] == [
            HANGZHOU, None, INDIVIDUAL, None, FULL
        ]  # fmt: skip
        assert errors[0]["path"] == ["integrityBadges", 1]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        denied = [e["path"] for e in errors if e["extensions"]["code"] == "UNAUTHENTICATED"]
        if kind == "anonymous":
            assert denied == [
                ["integrityBadges", index, field]
                for field in ("grade", "gradeLabel")
                for index in (0, 2, 4)
            ]
        else:
            assert denied == []


PAGED = """query($u: USCC!, $n: Int, $a: String) { enterprise(uscc: $u) {
  businessFiles { platform stores(first: $n, after: $a) { edges { node { name } } } } } }"""


@pytest.mark.parametrize(
    ("variables", "most", "refusal"),
    [
        ({"u": HANGZHOU, "n": 1, "a": None}, 1, None),
        ({"u": HANGZHOU, "n": 2}, 2, None),  # $a left out: after's default
        ({"u": HANGZHOU}, 2, None),  # both left out: the defaults (10, of its 2 stores)
        (
            {"u": HANGZHOU, "n": None},
            None,
            "Argument 'first' has invalid value: Expected variable '$n' provided to"
            " non-null type 'Int!' not to be None.",
        ),
    ],
)
async def test_arguments_from_variables_answer_as_graphql_core_does(
    runtime: Runtime, variables: dict[str, Any], most: int | None, refusal: str | None
) -> None:
    """Arguments read straight off the variables when every one given is a variable the
    request holds; graphql-core's own reading for a variable left out or a null."""
    viewer, _claims = VIEWERS["member"]
    planned, reference = await both(runtime, viewer, PAGED, variables)
    assert planned == reference
    data, errors = planned
    if refusal is None:
        stores = [len(f["stores"]["edges"]) for f in data["enterprise"]["businessFiles"]]
        assert max(stores) == most
        assert errors == []
    else:
        # null for first's Int!: each platform's stores refused, as graphql-core says
        assert [(error["message"], error["path"][-1]) for error in errors] == [
            (refusal, "stores")
        ] * 4


async def test_abstract_types_and_fragments_answer_as_graphql_core_does(
    runtime: Runtime, client: Any
) -> None:
    found = await client.post(
        "/graphql",
        json={
            "query": f'{{ a: enterprise(uscc: "{HANGZHOU}") {{ id }} '
            f'b: enterprise(uscc: "{FULL}") {{ id }} }}'
        },
    )
    ids = [found.json()["data"]["a"]["id"], found.json()["data"]["b"]["id"], "bm90OmFuaWQ="]
    for kind in VIEWERS:
        viewer, _claims = VIEWERS[kind]
        planned, reference = await both(runtime, viewer, NODES, {"ids": ids})
        assert planned == reference, kind
        data, _errors = planned
        assert [node["__typename"] if node else None for node in data["nodes"]][:2] == [
            "Enterprise",
            "Enterprise",
        ]


async def test_variable_errors_answer_as_graphql_core_does(runtime: Runtime) -> None:
    viewer, _claims = VIEWERS["member"]
    planned, reference = await both(runtime, viewer, BADGES, {"u": [1, None]})
    assert planned == reference
    assert planned[0] is None and planned[1][0]["message"].startswith("Variable '$u'")


def test_what_plans_leave_to_graphql_core() -> None:
    """Introspection, directives, mutations and an operation that cannot be chosen run
    on graphql-core (the engine falls back when ``compile_plan`` gives None)."""
    from graphql import parse

    for query in (
        "{ __schema { queryType { name } } }",
        '{ __type(name: "Enterprise") { name } }',
        f'{{ enterprise(uscc: "{HANGZHOU}") {{ name @include(if: true) }} }}',
        "query A { integrityBadges(usccs: []) { name } } query B { __typename }",
    ):
        assert compile_plan(ENGINE.graphql_schema, parse(query), None) is None, query
    assert compile_plan(ENGINE.graphql_schema, parse("{ __typename }"), None) is not None


@strawberry.type
class Part:
    @strawberry.field
    def ok(self) -> str:
        return "ok"

    @strawberry.field
    def broken(self) -> str:
        raise GraphQLError("broken", extensions={"code": "BROKEN"})

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        return "later"

    @strawberry.field
    async def later_broken(self) -> str | None:
        await asyncio.sleep(0)
        raise GraphQLError("later broken", extensions={"code": "BROKEN"})


@strawberry.enum
class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@strawberry.type
class Gauge:
    @strawberry.field
    def number(self) -> int:
        return 7

    @strawberry.field
    def numeral(self) -> int:
        return "8"  # type: ignore[return-value]  # coerced, as graphql-core coerces it

    @strawberry.field
    def shade(self) -> Shade:
        return Shade.DARK

    @strawberry.field
    def missing(self) -> str:
        return None  # type: ignore[return-value]  # a null where none may be

    @strawberry.field
    def wrong(self) -> int | None:
        return "seven"  # type: ignore[return-value]  # no Int

    @strawberry.field
    def large(self) -> int | None:
        return 2**31  # beyond GraphQL's Int

    @strawberry.field
    def flag(self) -> int:
        return True  # Int's 1


class Lookalike:
    """Not a Part, but answers as one: graphql-core reads its fields all the same."""


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Tag(Named):
    pass


@strawberry.type
class PartsQuery:
    @strawberry.field
    def parts(self) -> list[Part | None]:
        return [Part(), Part()]

    @strawberry.field
    def mixed(self) -> list[Part | None]:
        return [Part(), None, Lookalike(), Part()]  # type: ignore[list-item]

    @strawberry.field
    def lookalike(self) -> Part:
        return Lookalike()  # type: ignore[return-value]

    @strawberry.field
    def gauge(self) -> Gauge:
        return Gauge()

    @strawberry.field
    def tags(self) -> list[Tag]:
        return [Tag(name="a"), Tag(name="b")]

    @strawberry.field
    def not_a_tag(self) -> Tag | None:
        return Part()  # type: ignore[return-value]  # refused by Tag's is_type_of

    @strawberry.field
    def required_broken(self) -> Part:
        raise GraphQLError("required broken", extensions={"code": "BROKEN"})

    @strawberry.field
    def strict(self) -> list[Part] | None:
        return [Part(), Part()]

    @strawberry.field
    async def one(self) -> Part | None:
        return Part()

    @strawberry.field
    def required(self) -> Part:
        return Part()


PARTS = strawberry.Schema(query=PartsQuery, types=[Tag])


async def parts_answer(query: str) -> tuple[Any, list[dict[str, Any]]]:
    """The plan's answer on the small schema, the same written or interpreted and the
    same as graphql-core's."""
    from graphql import execute, parse

    document = parse(query)
    plan = compile_plan(PARTS._schema, document, None)
    assert plan is not None
    planned = _answer(await plan.run(None, None, written=True))  # type: ignore[arg-type]
    interpreted = await plan.run(None, None, written=False)  # type: ignore[arg-type]
    assert _answer(interpreted) == planned
    reference = execute(
        PARTS._schema, document, executor_class=StrawberryGraphQLCoreExecutionContext
    )
    if not isinstance(reference, ExecutionResult):
        reference = await reference
    assert planned == _answer(reference)
    return planned


@pytest.mark.parametrize(
    "query",
    [
        "{ parts { ok broken later } one { ok later laterBroken } }",
        "{ strict { ok later broken } parts { laterBroken ok } }",
        "{ one { later broken } strict { ok } }",
        "{ required { ok broken } parts { ok } }",
        "{ a: parts { ok } b: parts { laterBroken } __typename }",
        "{ strict { laterBroken later broken } one { laterBroken } }",
        "{ parts { laterBroken broken } strict { later laterBroken } }",
    ],
)
async def test_nulls_propagate_as_graphql_core_propagates_them(query: str) -> None:
    planned = await parts_answer(query)
    assert planned[1] and {error["extensions"]["code"] for error in planned[1]} == {"BROKEN"}


@pytest.mark.parametrize(
    ("query", "data", "errors"),
    [
        (
            "{ mixed { ok broken } lookalike { ok later } }",
            {"mixed": [None, None, None, None], "lookalike": {"ok": "ok", "later": "later"}},
            [["mixed", 0, "broken"], ["mixed", 2, "broken"], ["mixed", 3, "broken"]],
        ),
        (
            "{ gauge { number numeral shade wrong large flag } }",
            {
                "gauge": {
                    "number": 7,
                    "numeral": 8,
                    "shade": "DARK",
                    "wrong": None,
                    "large": None,
                    "flag": 1,
                }
            },
            [["gauge", "wrong"], ["gauge", "large"]],
        ),
        ("{ gauge { number missing } parts { ok } }", None, [["gauge", "missing"]]),
        (
            "{ tags { name __typename } notATag { name } }",
            {
                "tags": [{"name": "a", "__typename": "Tag"}, {"name": "b", "__typename": "Tag"}],
                "notATag": None,
            },
            [["notATag"]],
        ),
        ("{ requiredBroken { ok } parts { ok } }", None, [["requiredBroken"]]),
    ],
)
async def test_values_off_the_common_path_complete_as_graphql_core_completes_them(
    query: str, data: Any, errors: list[list[Any]]
) -> None:
    """Plans send a value of its field's own class straight to its selection; another
    class, null, an error, a wrong scalar, a refused ``is_type_of`` take the general
    path, with graphql-core's answer."""
    planned = await parts_answer(query)
    assert planned[0] == data
    assert [error["path"] for error in planned[1]] == errors


async def test_a_plan_is_written_out_once_it_has_run_a_few_times() -> None:
    """A document sent once never pays for writing its selections out as Python."""
    plan = compile_plan(PARTS._schema, parse("{ parts { ok } gauge { shade } }"), None)
    assert plan is not None
    expected = ({"parts": [{"ok": "ok"}, {"ok": "ok"}], "gauge": {"shade": "DARK"}}, [])
    for _ in range(_WRITTEN_AFTER):
        assert _answer(await plan.run(None, None)) == expected  # type: ignore[arg-type]
        assert plan.execute_root is None
    assert _answer(await plan.run(None, None)) == expected  # type: ignore[arg-type]
    assert plan.execute_root is not None


def test_an_enum_value_completes_as_its_type_would_complete_it() -> None:
    """Plans look a member's name up (``Completion.enum_names``); graphql-core asks the
    type, which searches its values: the same name for every member of every enum."""
    checked = 0
    for graphql_type in ENGINE.graphql_schema.type_map.values():
        wrapped = getattr(graphql_type, "wrapped_cls", None)
        if not isinstance(graphql_type, GraphQLEnumType) or wrapped is None:
            continue
        completion = Completion(graphql_type)
        assert completion.enum_class is wrapped
        for member in wrapped:
            assert completion.enum_names[id(member)] == graphql_type.coerce_output_value(member)
            checked += 1
    assert checked >= 40  # every member of the schema's enums


async def test_a_request_with_errors_is_freed_without_the_collector(runtime: Runtime) -> None:
    """An error keeps its traceback, and the traceback the frames that raised it: a
    cycle through the run that only the collector would free, for every denied value
    (a hundred for a hundred badges). The engine drops tracebacks once it has logged
    what it logs, so a request's objects go as soon as its answer is made."""
    viewer, _claims = VIEWERS["anonymous"]
    variables = {"u": [HANGZHOU, "not-a-code", INDIVIDUAL]}
    gc.collect()
    gc.disable()
    try:
        context = request_context(
            runtime, viewer, request_id="freed", http_method="POST", client_address="-"
        )
        loaders = weakref.ref(context.loaders)
        body = await ENGINE.run(BADGES, variables, None, context, {OperationType.QUERY}, None)
        codes = sorted(error["extensions"]["code"] for error in body["errors"])
        assert codes == ["BAD_USER_INPUT"] + ["UNAUTHENTICATED"] * 4
        del context, body
        assert loaders() is None  # freed by reference counting alone
    finally:
        gc.enable()


VARIABLES = """query($u: [String!]!, $first: Int! = 2, $keyword: String, $f: EnterpriseFilter,
  $c: USCC) {
  integrityBadges(usccs: $u) { uscc }
  enterprises(first: $first, filter: $f) { edges { node { uscc } } }
  more: enterprises(first: 1, filter: {keyword: $keyword}) { pageInfo { hasNextPage } }
  enterprise(uscc: $c) { name } }"""


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ({"u": [HANGZHOU], "first": 3, "keyword": "服饰", "f": {"region": "33"}}, 0),  # all given
        ({"u": [HANGZHOU]}, 0),  # a default applied, nullable variables left out
        ({"u": [HANGZHOU], "first": 3, "keyword": None, "f": None}, 0),  # null where allowed
        ({"u": [HANGZHOU], "first": 3, "keyword": "a", "f": None, "unknown": 1}, 0),  # an extra
        ({"u": [HANGZHOU], "first": None}, 1),  # null for a non-null variable with a default
        ({"u": None, "first": "three"}, 2),  # two that do not coerce
        ({"u": [HANGZHOU], "first": 3, "f": {"regoin": "33"}}, 1),  # an unknown input field
        ({}, 1),  # the non-null variable left out
        ({"u": [HANGZHOU], "first": 3, "c": HANGZHOU}, 0),  # a custom scalar
        ({"u": [HANGZHOU], "first": 3, "c": "not-a-code"}, 1),  # one it refuses
        ({"u": [HANGZHOU], "first": 3, "c": 5}, 1),  # of the wrong type
        ({"u": HANGZHOU, "first": 3}, 0),  # one value for a list: a list of it
        ({"u": [HANGZHOU, None], "first": 3}, 1),  # null in a list of non-null items
        ({"u": [HANGZHOU, 5], "first": 3}, 1),  # an item of the wrong type
        ({"u": [], "first": 3.0}, 0),  # an empty list; a float that is an integer
        ({"u": [[HANGZHOU]], "first": 3}, 1),  # a list nested where none may be
    ],
)
def test_variables_coerce_as_graphql_core_coerces_them(raw: dict[str, Any], errors: int) -> None:
    """Plans coerce variables themselves when every one is given and coerces; any
    other case goes to graphql-core. Either way: graphql-core's values, sources and
    errors."""
    plan = compile_plan(ENGINE.graphql_schema, parse(VARIABLES), None)
    assert plan is not None
    ours = plan.variables(raw)
    reference = get_variable_values(
        ENGINE.graphql_schema, plan.operation.variable_definitions or (), raw, 50
    )
    if isinstance(reference, list):
        assert isinstance(ours, list)
        assert [error.formatted for error in ours] == [error.formatted for error in reference]
        assert len(reference) == errors
        return
    assert not isinstance(ours, list) and errors == 0

    def sources(values: Any) -> dict[str, tuple[str, str, Any]]:
        return {
            name: (source.signature.name, str(source.signature.type), source.value)
            for name, source in values.sources.items()
        }

    assert ours.coerced == reference.coerced
    assert sources(ours) == sources(reference)
    assert ours.coerced["u"] == (raw["u"] if isinstance(raw["u"], list) else [raw["u"]])
    assert ours.coerced["first"] == raw.get("first", 2)


@strawberry.type
class Guarded:
    enterprise_uscc: strawberry.Private[str | None]
    shown: str = visible(Tier.PUBLIC, "Anyone's.")
    kept: str = visible(Tier.MEMBER, "A member's, never null.")
    maybe: str | None = visible(Tier.MEMBER, "A member's.")

    @visible(Tier.MEMBER, "A member's, resolved (a resolver that takes its info).")
    def resolved(self, info: strawberry.Info) -> str | None:
        return "d"

    @visible(Tier.MEMBER, "A member's, resolved, never null.")
    def resolved_kept(self, info: strawberry.Info) -> str:
        return "e"


@strawberry.type
class GuardedQuery:
    @strawberry.field
    def guarded(self) -> Guarded | None:
        return Guarded(enterprise_uscc=None, shown="a", kept="b", maybe="c")


GUARDED = strawberry.Schema(query=GuardedQuery)


@pytest.mark.parametrize(
    ("query", "data", "errors"),
    [
        (
            "{ guarded { shown maybe } }",
            {"guarded": {"shown": "a", "maybe": None}},
            [("Log in to see maybe (tier MEMBER).", ["guarded", "maybe"])],
        ),
        (  # a denied non-null field nulls its parent, and what follows it is not run
            "{ guarded { shown kept maybe } }",
            {"guarded": None},
            [("Log in to see kept (tier MEMBER).", ["guarded", "kept"])],
        ),
        (  # a resolver's field: its resolver is not called
            "{ guarded { resolved shown } }",
            {"guarded": {"resolved": None, "shown": "a"}},
            [("Log in to see resolved (tier MEMBER).", ["guarded", "resolved"])],
        ),
        (
            "{ guarded { shown resolvedKept resolved } }",
            {"guarded": None},
            [("Log in to see resolvedKept (tier MEMBER).", ["guarded", "resolvedKept"])],
        ),
    ],
)
async def test_a_denied_field_is_kept_as_its_error_written_or_interpreted(
    query: str, data: Any, errors: list[tuple[str, list[Any]]]
) -> None:
    plan = compile_plan(GUARDED._schema, parse(query), None)
    assert plan is not None
    for written in (True, False):
        context = SimpleNamespace(viewer=Anonymous(), decisions={})
        result = await plan.run(None, context, None, written=written)  # type: ignore[arg-type]
        assert result.data == data
        assert [(error.message, error.path, error.extensions) for error in result.errors or ()] == [
            (message, path, {"code": "UNAUTHENTICATED"}) for message, path in errors
        ]
        if written and data["guarded"] is not None:  # kept, never raised
            assert [error.__traceback__ for error in result.errors or ()] == [None]


_COUNTED: list[int] = []


@strawberry.type
class Counted:
    enterprise_uscc: strawberry.Private[str | None]

    @visible(Tier.MEMBER, "A member's, with an argument and its info.")
    def counted(self, info: strawberry.Info, times: int = 1) -> str | None:
        _COUNTED.append(times)
        return "c" * times


@strawberry.type
class CountedQuery:
    @strawberry.field
    def item(self) -> Counted:
        return Counted(enterprise_uscc=None)


async def test_a_field_shut_to_the_viewer_is_denied_without_its_resolver() -> None:
    """A rule that no value passes for the viewer's kind (``closed_to_viewer``) is
    denied in the written executor before the resolver's arguments and info are
    made: the resolver is never called, and the denial is the one the rule gives."""
    plan = compile_plan(
        strawberry.Schema(query=CountedQuery)._schema, parse("{ item { counted(times: 2) } }"), None
    )
    assert plan is not None
    _COUNTED.clear()
    for _ in range(_WRITTEN_AFTER + 2):  # interpreted first, then written
        context = SimpleNamespace(viewer=Anonymous(), decisions={})
        result = await plan.run(None, context, None)  # type: ignore[arg-type]
        assert result.data == {"item": {"counted": None}}
        assert [(error.message, error.path, error.extensions) for error in result.errors or ()] == [
            (
                "Log in to see counted (tier MEMBER).",
                ["item", "counted"],
                {"code": "UNAUTHENTICATED"},
            )
        ]
    assert _COUNTED == []
    member = SimpleNamespace(viewer=Member(subject="m"), decisions={})
    result = await plan.run(None, member, None)  # type: ignore[arg-type]
    assert (result.data, result.errors, _COUNTED) == ({"item": {"counted": "cc"}}, None, [2])


@pytest.mark.parametrize(
    ("viewer", "tier", "closed"),
    [
        (Anonymous(), Tier.PUBLIC, None),
        (Anonymous(), Tier.MEMBER, Decision.UNAUTHENTICATED),
        (Anonymous(), Tier.OWNER, Decision.UNAUTHENTICATED),
        (Member(subject="m"), Tier.MEMBER, None),
        (Member(subject="m"), Tier.OWNER, Decision.FORBIDDEN),
        (Member(subject="m"), Tier.OPERATOR, Decision.FORBIDDEN),
        # Decided per enterprise or per scope: never shut whole.
        (Owner(subject="o", enterprise="91330100MA27XK3Q1Y"), Tier.OWNER, None),
        (Owner(subject="o", enterprise="91330100MA27XK3Q1Y"), Tier.OPERATOR, None),
        (ServiceClient(subject="s"), Tier.OWNER, None),
        (Operator(subject="op"), Tier.OWNER, None),
    ],
)
def test_only_anonymous_viewers_and_members_are_shut_out_of_a_field_whole(
    viewer: Viewer, tier: Tier, closed: Decision | None
) -> None:
    context = SimpleNamespace(viewer=viewer, decisions={})
    assert closed_to_viewer(context, Rule(tier)) is closed


_ERROR_STEPS = st.one_of(st.integers(0, 2), st.sampled_from(["node", "stores", "title"]))
_SENT_ERRORS = st.lists(
    st.fixed_dictionaries(
        {"message": st.sampled_from(["denied", "failed"])},
        optional={
            "locations": st.sampled_from([[{"line": 2, "column": 5}], [{"line": 1, "column": 9}]]),
            "path": st.lists(_ERROR_STEPS, max_size=4),
        },
    ),
    max_size=8,
)


@given(_SENT_ERRORS)
def test_errors_are_sent_in_document_order_whether_their_paths_compare_or_not(
    errors: list[dict[str, Any]],
) -> None:
    expected = sorted(errors, key=_document_order)
    in_document_order(errors)
    assert errors == expected


def test_an_index_meeting_a_name_sorts_the_index_first() -> None:
    at = [{"line": 3, "column": 7}]
    errors = [
        {"message": "b", "locations": at, "path": ["enterprise", "stores"]},
        {"message": "a", "locations": at, "path": ["enterprise", 0]},
        {"message": "c", "locations": [{"line": 1, "column": 1}], "path": ["enterprise"]},
    ]
    in_document_order(errors)
    assert [error["message"] for error in errors] == ["c", "a", "b"]


def test_a_page_makes_its_page_info_when_it_is_first_read() -> None:
    """``CountedListConnection.page`` leaves the page info out until it is read, then
    makes it as ``ListConnection.resolve_connection`` would have, once."""
    from resolvers.pagination import _cursor
    from resolvers.platforms import StoreConnection

    items = [f"store {index}" for index in range(25)]
    after = _cursor("arrayconnection", 9)
    page = StoreConnection.page(items, first=10, after=after)
    assert "page_info" not in page.__dict__
    assert [edge.node for edge in page.edges] == items[10:20]
    assert page.total_count == 25
    info = page.page_info
    assert (info.start_cursor, info.end_cursor) == (
        _cursor("arrayconnection", 10),
        _cursor("arrayconnection", 19),
    )
    assert (info.has_previous_page, info.has_next_page) == (True, True)
    assert page.page_info is info  # made once
    last = StoreConnection.page(items, first=10, after=_cursor("arrayconnection", 19))
    assert (last.page_info.has_previous_page, last.page_info.has_next_page) == (True, False)
    empty = StoreConnection.page([], first=10, after=None)
    assert (empty.page_info.start_cursor, empty.page_info.has_next_page) == (None, False)
    with pytest.raises(AttributeError):
        _ = page.nothing_such


def test_pages_are_made_of_the_edges_the_schema_built() -> None:
    """Every connection's pages hold edges of the class its schema built, the class its
    compiled plans hand straight to the edge type's executor (a copy of the generic
    edge, resolved apart, would take the general path edge by edge)."""
    from resolvers.pagination import CountedListConnection

    types = schema._schema.type_map
    connections = {
        name: type_.extensions["strawberry-definition"].origin
        for name, type_ in types.items()
        if isinstance(getattr(type_.extensions.get("strawberry-definition"), "origin", None), type)
        and issubclass(type_.extensions["strawberry-definition"].origin, CountedListConnection)
    }
    assert {"StoreConnection", "ChangeRecordConnection", "CertificationConnection"} <= set(
        connections
    )
    for name, connection in connections.items():
        edge = types[name.removesuffix("Connection") + "Edge"]
        page = connection.page(["item"], first=1, after=None)
        assert page.edges[0].__class__ is edge.extensions["strawberry-definition"].origin, name


def test_a_raised_denial_leaves_its_traceback_behind() -> None:
    """A denial of a non-null field is raised (to null its parent); what it raised
    through is dropped before it is sent, as any raised error's is, while one kept
    without a raise passes as it is."""
    from resolvers.engine import _log_and_mask
    from resolvers.permissions import _denial

    nodes = list(parse("{ guarded { kept } }").definitions[0].selection_set.selections)  # type: ignore[attr-defined]
    kept = _denial(
        None, "kept", nodes, Path(None, "kept", "Q"), Rule(Tier.MEMBER), Decision.FORBIDDEN
    )
    raised = _denial(
        None, "kept", nodes, Path(None, "kept", "Q"), Rule(Tier.MEMBER), Decision.FORBIDDEN
    )
    try:
        raise raised
    except GraphQLError:
        pass
    assert raised.__traceback__ is not None
    assert _log_and_mask([kept, raised], "r") == [kept, raised]
    assert (kept.__traceback__, raised.__traceback__) == (None, None)
