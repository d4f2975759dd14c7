"""Cursor connections over in-memory lists, on Strawberry's Relay ``ListConnection``.

The library does the slicing and the cursors; this module adds what a public API
needs on top: argument errors with BAD_USER_INPUT, a page-size cap per kind of viewer
(shared with search), and totalCount.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Self, cast

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.relay import Edge, ListConnection, PageInfo
from strawberry.relay.types import PREFIX, NodeType
from strawberry.relay.utils import from_base64, to_base64
from strawberry.types.base import StrawberryContainer, get_object_definition

from gateway.viewer import Viewer
from loaders.base import SourceLoader
from resolvers.errors import bad_user_input

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "PAGE_LIMITS",
    "PAGE_SIZE_RULE",
    "CountedListConnection",
    "check_first",
]

DEFAULT_PAGE_SIZE = 10
#: The largest page each kind of viewer may ask for, in every list of the graph.
PAGE_LIMITS = {"anonymous": 10, "member": 50, "owner": 50, "operator": 50, "service": 100}
PAGE_SIZE_RULE = (
    "`first`: page size, default 10, at most 10 for anonymous viewers, 50 when logged "
    "in and 100 for service clients"
)


def check_first(viewer: Viewer, first: int) -> None:
    limit = PAGE_LIMITS[viewer.kind]
    if not 0 <= first <= limit:
        raise bad_user_input(f"first must be between 0 and {limit} for this viewer ({viewer.kind})")


def check_page_arguments(viewer: Viewer, first: int, after: str | None) -> None:
    """Reject bad paging arguments before anything is loaded."""
    check_first(viewer, first)
    if after is None:
        return
    try:
        prefix, offset = from_base64(after)
        valid = prefix == PREFIX and int(offset) >= 0
    except ValueError:
        valid = False
    if not valid:
        raise bad_user_input("after is not a cursor returned by this connection")


@strawberry.type
class CountedListConnection(ListConnection[NodeType]):
    total_count: int = strawberry.field(
        default=0, description="How many items the whole list holds, across all pages."
    )

    @classmethod
    def page(cls, items: Sequence[Any], *, first: int, after: str | None) -> Self:
        """One page of a list in hand (the arguments already checked).

        The slicing is ``ListConnection.resolve_connection``'s for a list and `first`
        / `after`, with the same cursors; done here because the library resolves the
        generic edge type again on every call, which cost a seventh of an archive page.
        """
        edge = _edge_class(cls)
        start = int(from_base64(after)[1]) + 1 if after is not None else 0
        page = items[start : start + first]
        # ``Edge.resolve_edge``, its cursor encoded once per offset.
        prefix = edge.CURSOR_PREFIX
        edges = [edge(cursor=_cursor(prefix, start + i), node=node) for i, node in enumerate(page)]
        # Its fields set as ``__init__`` would set them, but its page info, made the first
        # time it is read (``__getattr__``): most pages are asked for their edges only.
        connection = cls.__new__(cls)
        connection.edges = edges
        connection.total_count = len(items)
        connection.__dict__["_window"] = (start, len(items) > start + first)
        return connection

    def __getattr__(self, name: str) -> Any:
        """The page info of a page made by ``page``, made when first read."""
        window = self.__dict__.get("_window") if name == "page_info" else None
        if window is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        start, has_next_page = window
        edges = self.edges
        info = self.page_info = PageInfo(
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=start > 0,
            has_next_page=has_next_page,
        )
        return info

    @classmethod
    def of(
        cls,
        items: Sequence[Any],
        *,
        info: strawberry.Info,
        first: int,
        after: str | None,
    ) -> Self:
        """Check the arguments, then one page of a list in hand."""
        check_page_arguments(info.context.viewer, first, after)
        return cls.page(items, first=first, after=after)

    @classmethod
    def from_loader(
        cls,
        loader: SourceLoader,
        key: Any,
        build: Callable[[Any], Sequence[Any]],
        *,
        info: strawberry.Info,
        first: int,
        after: str | None,
    ) -> Any:
        """Check the arguments before anything is loaded, then one page of
        ``build(documents)``: at once when a parent loaded them, else awaitable."""
        check_page_arguments(info.context.viewer, first, after)
        return loader.then(key, lambda docs: cls.page(build(docs), first=first, after=after))


@functools.lru_cache(maxsize=4096)
def _cursor(prefix: str, offset: int) -> str:
    """The cursor of the item at ``offset`` (``Edge.resolve_edge``'s), encoded once:
    offsets are few (a list's length at most), and every page repeats them."""
    return to_base64(prefix, offset)


def _edge_class(connection: type[ListConnection[Any]]) -> type[Edge[Any]]:
    """The edge class of a connection's pages: the one its schema built
    (``use_schema_edges``), else the concrete edge type resolved once."""
    edge = _SCHEMA_EDGES.get(connection)
    return edge if edge is not None else _resolved_edge_class(connection)  # type: ignore[arg-type]  # classes are hashable


#: Each connection's edge class as the schema built it, by connection class.
_SCHEMA_EDGES: dict[type[Any], type[Edge[Any]]] = {}


def use_schema_edges(schema: GraphQLSchema) -> None:
    """Make pages of ``schema``'s connections with the edge classes ``schema`` built.

    Resolving a generic edge type again (``_resolved_edge_class``) makes a class of its
    own, equal in every way but identity to the one the schema built; the compiled
    plans (resolvers/plan.py) hand a value straight to its type's executor only when
    it is of the class the schema built, so edges of the other class took the general
    path, each one checked and completed by type."""
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType):
            continue
        origin = getattr(type_.extensions.get("strawberry-definition"), "origin", None)
        if not (isinstance(origin, type) and issubclass(origin, CountedListConnection)):
            continue
        edges: Any = type_.fields["edges"].type
        while not isinstance(edges, GraphQLObjectType):
            edges = edges.of_type
        _SCHEMA_EDGES[origin] = _paged(edges.extensions["strawberry-definition"].origin)


@functools.cache
def _resolved_edge_class(connection: type[ListConnection[Any]]) -> type[Edge[Any]]:
    """The concrete edge type of a connection class, resolved once."""
    definition = get_object_definition(connection, strict=True)
    field = definition.get_field("edges")
    assert field is not None
    edge: Any = field.resolve_type(type_definition=definition)
    while isinstance(edge, StrawberryContainer):
        edge = edge.of_type
    return _paged(edge)


def _paged(edge: Any) -> type[Edge[Any]]:
    """``edge``, once it is known to build as ``page`` builds edges (as
    ``Edge.resolve_edge`` does): no edge type may differ."""
    assert edge.resolve_edge.__func__ is Edge.resolve_edge.__func__, edge  # type: ignore[attr-defined]
    return cast("type[Edge[Any]]", edge)
