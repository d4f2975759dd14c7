"""The identity source: identity-authentication results, one per enterprise (``_id`` = USCC)."""

from __future__ import annotations

from pymongo import IndexModel

from gateway.settings import Source

__all__ = ["INDEXES"]

AUTHENTICATIONS = "authentications"

#: Read by ``_id`` only, which needs no secondary index.
INDEXES: dict[tuple[Source, str], list[IndexModel]] = {}
