"""Persisted operations: Apollo's automatic persisted queries, and trusted documents.

Automatic persisted queries (APQ, Apollo's protocol): a client sends
``extensions.persistedQuery = {"version": 1, "sha256Hash": …}`` without the document;
a known hash runs its document, an unknown one answers ``PERSISTED_QUERY_NOT_FOUND`` and
the client sends hash and document together, which registers the document (its SHA-256
is checked first; it is kept only once it has validated and been paid for, and only up
to 4 KiB, so nobody can fill Redis with documents). Documents are kept in Redis, so every
replica knows what one learnt, and in a small per-process table in front of it: a hash
names its document forever.

Trusted documents (``TRUSTED_DOCUMENTS_FILE``): the operations a client ships (the
mobile app's), registered ahead of time, by hash. When the file is configured, anonymous
viewers may run those operations only, by hash or in full; they cannot register more.
Logged-in viewers are not restricted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from gateway.cache import DocumentCache
from gateway.requests import Operation, RequestRefused
from gateway.viewer import Anonymous, Viewer

__all__ = ["PersistedNotFound", "PersistedQueries", "load_trusted_documents", "sha256"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The longest document automatic persisted queries keep (an app's are far shorter).
MAX_REGISTERED_CHARS = 4096
_LOCAL_ENTRIES = 1024


class PersistedNotFound(Exception):
    """The hash is not known: the client should send the document with it (HTTP 200)."""


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_trusted_documents(path: Path) -> dict[str, str]:
    """Hash → document, from ``{"<sha256>": "<document>", …}`` or an Apollo persisted
    query manifest (``{"operations": [{"id": …, "body": …}, …]}``). Every hash must be
    its document's SHA-256: a wrong entry stops the start-up, not a request."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        entries = {op["id"]: op["body"] for op in data["operations"]}
    elif isinstance(data, dict):
        entries = data
    else:
        raise ValueError(f"{path}: expected an object of hash -> document, or a manifest")
    for digest, document in entries.items():
        if not isinstance(document, str) or sha256(document) != digest:
            raise ValueError(f"{path}: the entry {digest!r} is not the SHA-256 of its document")
    return dict(entries)


class PersistedQueries:
    def __init__(
        self,
        cache: DocumentCache,
        *,
        ttl_seconds: int,
        trusted: dict[str, str] | None = None,
    ) -> None:
        self._cache = cache
        self._ttl = ttl_seconds
        self._trusted = trusted
        self._local: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def _key(digest: str) -> str:
        return f"ig:apq:{digest}"

    def _remember(self, digest: str, document: str) -> None:
        self._local[digest] = document
        self._local.move_to_end(digest)
        while len(self._local) > _LOCAL_ENTRIES:
            self._local.popitem(last=False)

    async def _lookup(self, digest: str) -> str | None:
        if self._trusted is not None and digest in self._trusted:
            return self._trusted[digest]
        found = self._local.get(digest)
        if found is not None:
            return found
        raw = (await self._cache.get_many([self._key(digest)])).get(self._key(digest))
        if raw is None:
            return None
        document = raw.decode()
        self._remember(digest, document)
        return document

    async def register(self, operation: Operation) -> None:
        """Keep the document of a persisted query that ran: called only once the operation
        was validated and paid for (so nothing that fails to parse, or goes unpaid, is
        stored), and only for documents up to ``MAX_REGISTERED_CHARS``; a longer one runs
        but is not kept, and its client goes on sending it in full."""
        persisted = (operation.extensions or {}).get("persistedQuery")
        document = operation.query
        if not isinstance(persisted, dict) or document is None:
            return
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or digest in self._local:
            return
        if len(document) > MAX_REGISTERED_CHARS or sha256(document) != digest:
            return
        self._remember(digest, document)
        await self._cache.set_many({self._key(digest): document.encode()}, ttl_seconds=self._ttl)

    def _registered(self, digest: str) -> bool:
        return self._trusted is not None and digest in self._trusted

    async def resolve(self, operation: Operation, viewer: Viewer) -> Operation:
        """The operation with its document, or a refusal, or ``PersistedNotFound``."""
        restricted = self._trusted is not None and isinstance(viewer, Anonymous)
        persisted = (operation.extensions or {}).get("persistedQuery")
        if persisted is None:
            if restricted and not (
                operation.query is not None and self._registered(sha256(operation.query))
            ):
                raise _not_in_safelist()
            return operation
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise RequestRefused(
                400, "PERSISTED_QUERY_NOT_SUPPORTED", "Only persistedQuery version 1 is supported."
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise RequestRefused(
                400, "BAD_REQUEST", "persistedQuery.sha256Hash must be 64 lower-case hex digits."
            )
        if operation.query is not None:
            if sha256(operation.query) != digest:
                raise RequestRefused(400, "BAD_REQUEST", "provided sha does not match query")
            if restricted and not self._registered(digest):
                raise _not_in_safelist()
            return operation
        document = await self._lookup(digest)
        if document is None:
            if restricted:
                raise RequestRefused(
                    400,
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    f"Persisted query {digest} is not in the list of registered operations.",
                )
            raise PersistedNotFound
        return replace(operation, query=document)


def _not_in_safelist() -> RequestRefused:
    return RequestRefused(
        400,
        "QUERY_NOT_IN_SAFELIST",
        "Anonymous viewers may run registered operations only; log in to run others.",
    )
