"""Data access: the only code that turns many keys into one MongoDB or Redis call."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TypeVar

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import SourceLoader, built_once
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

L = TypeVar("L", bound=SourceLoader)


class Loaders:
    """The loaders of one request; aiodataloader binds the running loop, so never share.

    Each loader is built the first time the request uses it: a badge needs four of the
    forty, and building the rest cost a tenth of a small request.
    """

    def __init__(
        self, sources: Sources, cache: DocumentCache, *, deadline: float | None = None
    ) -> None:
        self._sources = sources
        self._cache = cache
        #: When the request's time is up (``time.monotonic()``); None: no deadline.
        self.deadline = deadline

    @built_once
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The request's loop, asked for once for all its loaders."""
        return asyncio.get_running_loop()

    def _make(self, loader: type[L]) -> L:
        return loader(self._sources, self._cache, deadline=self.deadline, loop=self._loop)

    @built_once
    def enterprise_by_uscc(self) -> EnterpriseByUsccLoader:
        return self._make(EnterpriseByUsccLoader)

    @built_once
    def change_records_by_uscc(self) -> ChangeRecordsByUsccLoader:
        return self._make(ChangeRecordsByUsccLoader)

    @built_once
    def change_record_by_id(self) -> ChangeRecordByIdLoader:
        return self._make(ChangeRecordByIdLoader)

    @built_once
    def legal_representative_by_uscc(self) -> LegalRepresentativeByUsccLoader:
        return self._make(LegalRepresentativeByUsccLoader)

    @built_once
    def authentication_by_uscc(self) -> AuthenticationByUsccLoader:
        return self._make(AuthenticationByUsccLoader)

    @built_once
    def integrity_level_by_uscc(self) -> IntegrityLevelByUsccLoader:
        return self._make(IntegrityLevelByUsccLoader)

    @built_once
    def service_status_by_uscc(self) -> ServiceStatusByUsccLoader:
        return self._make(ServiceStatusByUsccLoader)

    @built_once
    def platforms(self) -> Mapping[Source, PlatformLoaders]:
        return {
            source: PlatformLoaders(
                self._sources, self._cache, source, deadline=self.deadline, loop=self._loop
            )
            for source in PLATFORMS
        }


def create_loaders(
    sources: Sources, cache: DocumentCache, *, deadline: float | None = None
) -> Loaders:
    """A request's loaders; ``deadline`` (``time.monotonic()``) bounds their reads."""
    return Loaders(sources, cache, deadline=deadline)
