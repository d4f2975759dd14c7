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


def create_loaders(sources: Sources, cache: DocumentCache) -> Loaders:
    return Loaders(
        enterprise_by_uscc=EnterpriseByUsccLoader(sources, cache),
        change_records_by_uscc=ChangeRecordsByUsccLoader(sources, cache),
        change_record_by_id=ChangeRecordByIdLoader(sources, cache),
        legal_representative_by_uscc=LegalRepresentativeByUsccLoader(sources, cache),
        authentication_by_uscc=AuthenticationByUsccLoader(sources, cache),
        integrity_level_by_uscc=IntegrityLevelByUsccLoader(sources, cache),
        service_status_by_uscc=ServiceStatusByUsccLoader(sources, cache),
        platforms={source: PlatformLoaders.create(sources, cache, source) for source in PLATFORMS},
    )
