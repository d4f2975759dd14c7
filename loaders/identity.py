"""The identity source: identity-authentication results, one per enterprise (``_id`` = USCC)."""

from __future__ import annotations

from pymongo import IndexModel

from gateway.settings import Source
from loaders.base import SourceLoader

__all__ = ["INDEXES", "AuthenticationByUsccLoader"]

AUTHENTICATIONS = "authentications"

#: Read by ``_id`` only, which needs no secondary index.
INDEXES: dict[tuple[Source, str], list[IndexModel]] = {}


class AuthenticationByUsccLoader(SourceLoader):
    source = Source.IDENTITY
    collection = AUTHENTICATIONS
