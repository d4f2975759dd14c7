"""Cursor connections over in-memory lists, on Strawberry's Relay ``ListConnection``.

The library does the slicing and the cursors; this module adds what a public API
needs on top: argument errors with BAD_USER_INPUT, a page-size cap, and totalCount.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import strawberry
from strawberry.relay import ListConnection
from strawberry.relay.types import PREFIX, NodeType
from strawberry.relay.utils import from_base64

from resolvers.errors import bad_user_input

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "CountedListConnection"]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 50


def check_page_arguments(first: int, after: str | None) -> None:
    """Reject bad paging arguments before anything is loaded."""
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise bad_user_input(f"first must be between 0 and {MAX_PAGE_SIZE}, got {first}")
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
        check_page_arguments(first, after)
        items = await load()
        connection = cls.resolve_connection(
            items, info=info, first=first, after=after, max_results=MAX_PAGE_SIZE
        )
        assert isinstance(connection, cls)  # a list is sliced synchronously
        connection.total_count = len(items)
        return connection
