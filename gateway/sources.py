"""MongoDB sources: one database per source, one client per distinct cluster URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from gateway.pii import Keyring
from gateway.settings import ConfigurationError, Settings, Source

__all__ = [
    "GATE",
    "GATEWAY_DATABASE",
    "ChargeGate",
    "NotAdmittedError",
    "Sources",
    "admitted",
]

# pymongo logs whole command replies at DEBUG: they would carry personal data (ID
# numbers) into the logs whatever level the gateway is run at. Never below WARNING.
logging.getLogger("pymongo.command").setLevel(logging.WARNING)

Document = dict[str, Any]
#: The database of what the gateway keeps itself (not a source: nobody else writes it).
GATEWAY_DATABASE = "integrity_gateway"
#: How long seeding and rebuilding may wait on one command before the store is taken
#: for a dead one.
_BULK_PATIENCE_MS = 600_000


class NotAdmittedError(Exception):
    """A source asked for on behalf of a request whose rate-limit charge has not let it
    read any (refused, or not answered yet)."""

    def __init__(self) -> None:
        super().__init__("the request's rate-limit charge has not admitted it to its sources")


class ChargeGate:
    """Whether a request's rate-limit charge lets it go to its sources.

    A query runs while its charge travels to Redis in the same round trip as its first
    read (resolvers/engine.py), so what Redis holds is read before the charge answers.
    Nothing else may happen before then: every read of a MongoDB source, and anything
    that writes, awaits ``passed()`` first, which raises ``NotAdmittedError`` when the
    charge refused the request (whose answer is then the refusal alone). ``Sources``
    hands no database to a request whose gate is not open (``GATE``), so a read that
    forgot to wait fails rather than run for a request that may be refused."""

    __slots__ = ("_answer",)

    def __init__(self) -> None:
        #: The charge's answer: 0 when every window took the cost (None: no charge
        #: in flight; the request was charged before it ran).
        self._answer: asyncio.Future[int] | None = None

    def hold(self, answer: asyncio.Future[int]) -> None:
        """Close the gate until ``answer`` (0: admitted) arrives."""
        self._answer = answer

    @property
    def open(self) -> bool:
        answer = self._answer
        return answer is None or (
            answer.done()
            and not answer.cancelled()
            and answer.exception() is None
            and answer.result() == 0
        )

    async def passed(self) -> None:
        """Wait for the charge's answer; raise ``NotAdmittedError`` if it refused."""
        answer = self._answer
        if answer is None:
            return
        if not answer.done():
            await asyncio.shield(answer)  # a field given up on leaves the charge alone
        if answer.result() != 0:
            raise NotAdmittedError()


#: The gate of the request run in this context, while its charge is in flight.
GATE: ContextVar[ChargeGate | None] = ContextVar("integrity_gateway_gate", default=None)


async def admitted() -> None:
    """Wait until the running request's charge admits it to its sources (at once when
    it was charged before it ran); raise ``NotAdmittedError`` when it refused."""
    gate = GATE.get()
    if gate is not None:
        await gate.passed()


def _admitted() -> None:
    gate = GATE.get()
    if gate is not None and not gate.open:
        raise NotAdmittedError()


def _keyring_or_error(settings: Settings) -> Keyring | ConfigurationError:
    try:
        return Keyring.from_settings(settings)
    except ConfigurationError as exc:
        return exc


class Sources:
    """The seven source databases of DESIGN §2.

    Sources that share a URL share a client (one connection pool per cluster);
    ``MONGODB_URL_<SOURCE>`` gives a source a cluster, and a client, of its own.
    """

    def __init__(
        self,
        urls: Mapping[Source, str],
        *,
        timeout_ms: int,
        bulk: bool = False,
        socket_timeout_ms: int | None = None,
        audit_url: str | None = None,
        keyring: Keyring | ConfigurationError | None = None,
    ) -> None:
        """``audit_url``: the audit trail's own cluster (default: the registry's).
        ``keyring`` seals and opens ID numbers (gateway/pii.py). ``bulk`` lifts the
        socket timeout, for seeding: a long insert must not be cut off (and then
        retried, which would duplicate it). ``socket_timeout_ms`` gives slow work
        (start-up's index builds) longer than a request's reads, while a source that is
        down is still found out within ``timeout_ms``."""
        #: Each source's own timeout, seconds: also the most a request's read may take.
        self.timeout_s: float | None = None if bulk else timeout_ms / 1000
        self._clients: dict[str, AsyncMongoClient[Document]] = {}
        self._databases: dict[Source, AsyncDatabase[Document]] = {}
        self._collections: dict[tuple[Source, str], AsyncCollection[Document]] = {}
        # The monitor's heartbeat waits connectTimeoutMS for an answer. A store busy
        # with slow work (an index build, a bulk write: the embedded one answers nothing
        # else meanwhile) must not be taken for a dead one, which would cancel that very
        # work; a source that is down still fails server selection after ``timeout_ms``.
        patience_ms = _BULK_PATIENCE_MS if bulk else max(timeout_ms, socket_timeout_ms or 0)

        def client_for(url: str) -> AsyncMongoClient[Document]:
            client = self._clients.get(url)
            if client is None:
                client = AsyncMongoClient(
                    url,
                    serverSelectionTimeoutMS=timeout_ms,
                    connectTimeoutMS=patience_ms,
                    socketTimeoutMS=None if bulk else (socket_timeout_ms or timeout_ms),
                    tz_aware=True,
                    appname="integrity-gateway",
                )
                self._clients[url] = client
            return client

        for source, url in urls.items():
            self._databases[source] = client_for(url)[source.value]
        registry_client = self._databases[Source.REGISTRY].client
        self._keyring = keyring
        self._audit = (client_for(audit_url) if audit_url else registry_client)["audit"]
        self._gateway = registry_client[GATEWAY_DATABASE]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        embedded_url: str | None,
        *,
        bulk: bool = False,
        socket_timeout_ms: int | None = None,
    ) -> Sources:
        urls: dict[Source, str] = {}
        for source in Source:
            url = settings.mongodb_url_for(source) or embedded_url
            if url is None:
                raise ValueError(f"no MongoDB URL for source {source.value}")
            urls[source] = url
        return cls(
            urls,
            timeout_ms=settings.mongodb_timeout_ms,
            bulk=bulk,
            socket_timeout_ms=socket_timeout_ms,
            audit_url=settings.audit_mongodb_url,
            keyring=_keyring_or_error(settings),
        )

    @property
    def pii(self) -> Keyring:
        """The keys of ID numbers at rest; a clear error where none were given (the
        watcher, which never reads a number, runs without them)."""
        if isinstance(self._keyring, Keyring):
            return self._keyring
        raise self._keyring or ConfigurationError(
            "these sources were opened without PII_ENCRYPTION_KEYS"
        )

    @property
    def audit(self) -> AsyncDatabase[Document]:
        """The audit trail: on its own cluster if configured, else the registry's."""
        _admitted()
        return self._audit

    @property
    def gateway(self) -> AsyncDatabase[Document]:
        """What the gateway itself keeps (correction requests, notifications, client
        mutation ids, the watcher's resume tokens), on the registry's cluster too."""
        _admitted()
        return self._gateway

    def db(self, source: Source) -> AsyncDatabase[Document]:
        _admitted()
        return self._databases[source]

    def collection(self, source: Source, name: str) -> AsyncCollection[Document]:
        """One collection object per (source, name) for the process: every request's
        loaders reuse it instead of building their own."""
        _admitted()
        key = (source, name)
        found = self._collections.get(key)
        if found is None:
            found = self._collections[key] = self._databases[source][name]
        return found

    async def ping(self) -> dict[Source, str | None]:
        """Each source's reachability: ``None`` when it answers, else the error text."""

        async def one(source: Source) -> str | None:
            try:
                await self._databases[source].command("ping")
            except PyMongoError as exc:
                return type(exc).__name__
            return None

        results = await asyncio.gather(*(one(source) for source in Source))
        return dict(zip(Source, results, strict=True))

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients.values()))
