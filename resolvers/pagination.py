"""Cursor connections over in-memory lists, on Strawberry's Relay ``ListConnection``.

The library does the slicing and the cursors; this module adds what a public API
needs on top: argument errors with BAD_USER_INPUT, a page-size cap per kind of viewer
(shared with search), and totalCount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import strawberry
from strawberry.relay import ListConnection
from strawberry.relay.types import PREFIX, NodeType
from strawberry.relay.utils import from_base64

from gateway.viewer import Viewer
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
    async def load_page(
        cls,
        load: Callable[[], Awaitable[Sequence[Any]]],
        *,
        info: strawberry.Info,
        first: int,
        after: str | None,
    ) -> Self:
        """Check the arguments, then load the whole list and slice one page of it."""
        check_page_arguments(info.context.viewer, first, after)
        items = await load()
        connection = cls.resolve_connection(
            items, info=info, first=first, after=after, max_results=first
        )
        assert isinstance(connection, cls)  # a list is sliced synchronously
        connection.total_count = len(items)
        return connection
