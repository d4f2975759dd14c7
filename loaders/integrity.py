"""The integrity source: integrity levels and service status (``_id`` = USCC in both)."""

from __future__ import annotations

from pymongo import IndexModel

from gateway.settings import Source
from loaders.base import SourceLoader

__all__ = ["INDEXES", "IntegrityLevelByUsccLoader", "ServiceStatusByUsccLoader"]

LEVELS = "levels"
SERVICE_STATUS = "service_status"

#: Both are read by ``_id`` only, which needs no secondary index.
INDEXES: dict[tuple[Source, str], list[IndexModel]] = {}


class IntegrityLevelByUsccLoader(SourceLoader):
    source = Source.INTEGRITY
    collection = LEVELS


class ServiceStatusByUsccLoader(SourceLoader):
    source = Source.INTEGRITY
    collection = SERVICE_STATUS
