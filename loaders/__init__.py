"""Data access: the only code that turns many keys into one MongoDB or Redis call."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.cache import DocumentCache
from gateway.sources import Sources
from loaders.registry import ChangeRecordsByUsccLoader, EnterpriseByUsccLoader

__all__ = ["Loaders", "create_loaders"]


@dataclass(frozen=True, slots=True)
class Loaders:
    """The loaders of one request; aiodataloader binds the running loop, so never share."""

    enterprise_by_uscc: EnterpriseByUsccLoader
    change_records_by_uscc: ChangeRecordsByUsccLoader


def create_loaders(sources: Sources, cache: DocumentCache) -> Loaders:
    return Loaders(
        enterprise_by_uscc=EnterpriseByUsccLoader(sources, cache),
        change_records_by_uscc=ChangeRecordsByUsccLoader(sources, cache),
    )
