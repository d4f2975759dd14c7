"""Data access: the only code that turns many keys into one MongoDB or Redis call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from loaders.identity import AuthenticationByUsccLoader
from loaders.integrity import IntegrityLevelByUsccLoader, ServiceStatusByUsccLoader
from loaders.platforms import PLATFORMS, PlatformLoaders
from loaders.registry import (
    ChangeRecordByIdLoader,
    ChangeRecordsByUsccLoader,
    EnterpriseByUsccLoader,
    LegalRepresentativeByUsccLoader,
)

__all__ = ["Loaders", "create_loaders"]


@dataclass(frozen=True, slots=True)
class Loaders:
    """The loaders of one request; aiodataloader binds the running loop, so never share."""

    enterprise_by_uscc: EnterpriseByUsccLoader
    change_records_by_uscc: ChangeRecordsByUsccLoader
    change_record_by_id: ChangeRecordByIdLoader
    legal_representative_by_uscc: LegalRepresentativeByUsccLoader
    authentication_by_uscc: AuthenticationByUsccLoader
    integrity_level_by_uscc: IntegrityLevelByUsccLoader
    service_status_by_uscc: ServiceStatusByUsccLoader
    platforms: Mapping[Source, PlatformLoaders]
    #: When the request's time is up (``time.monotonic()``); None: no deadline.
    deadline: float | None = None


def create_loaders(
    sources: Sources, cache: DocumentCache, *, deadline: float | None = None
) -> Loaders:
    """A request's loaders; ``deadline`` (``time.monotonic()``) bounds their reads."""
    return Loaders(
        enterprise_by_uscc=EnterpriseByUsccLoader(sources, cache, deadline=deadline),
        change_records_by_uscc=ChangeRecordsByUsccLoader(sources, cache, deadline=deadline),
        change_record_by_id=ChangeRecordByIdLoader(sources, cache, deadline=deadline),
        legal_representative_by_uscc=LegalRepresentativeByUsccLoader(
            sources, cache, deadline=deadline
        ),
        authentication_by_uscc=AuthenticationByUsccLoader(sources, cache, deadline=deadline),
        integrity_level_by_uscc=IntegrityLevelByUsccLoader(sources, cache, deadline=deadline),
        service_status_by_uscc=ServiceStatusByUsccLoader(sources, cache, deadline=deadline),
        platforms={
            source: PlatformLoaders.create(sources, cache, source, deadline=deadline)
            for source in PLATFORMS
        },
        deadline=deadline,
    )
