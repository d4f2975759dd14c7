"""The registry source: enterprises (public archive), change records, legal representatives."""

from __future__ import annotations

import enum
import hmac
import logging

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import PyMongoError

from gateway.pii import PiiError, is_sealed
from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import Document, SourceLoader, source_error, source_timeout
from loaders.codes import mask_id_number
from loaders.search import Criteria, read_page

__all__ = [
    "INDEXES",
    "ChangeRecordByIdLoader",
    "ChangeRecordsByUsccLoader",
    "EnterpriseByUsccLoader",
    "LegalRepresentativeByUsccLoader",
    "Verification",
    "sample_usccs",
    "verify_legal_representative",
]

log = logging.getLogger(__name__)

ENTERPRISES = "enterprises"
CHANGE_RECORDS = "change_records"
#: Kept apart from the public archive: the ID number is personal data.
LEGAL_REPRESENTATIVES = "legal_representatives"

INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    (Source.REGISTRY, CHANGE_RECORDS): [
        IndexModel(
            [("uscc", ASCENDING), ("date", DESCENDING), ("seq", DESCENDING)], name="uscc_date"
        ),
    ],
}


class EnterpriseByUsccLoader(SourceLoader):
    source = Source.REGISTRY
    collection = ENTERPRISES
    client_keys = True


class ChangeRecordsByUsccLoader(SourceLoader):
    """All change records of an enterprise, newest first."""

    source = Source.REGISTRY
    collection = CHANGE_RECORDS
    key_field = "uscc"
    many = True
    sort = (("uscc", ASCENDING), ("date", DESCENDING), ("seq", DESCENDING))


async def sample_usccs(sources: Sources) -> list[str]:
    """One USCC of each kind (enterprise, individual business, cooperative) to show a newcomer."""
    found = []
    for kind in ("91", "92", "93"):
        page = await read_page(sources, Criteria(kind=kind), after=None, limit=1)
        found += page.usccs
    return found


class ChangeRecordByIdLoader(SourceLoader):
    source = Source.REGISTRY
    collection = CHANGE_RECORDS
    client_keys = True


class LegalRepresentativeByUsccLoader(SourceLoader):
    """The legal representative's ID number, masked. The number is opened (decrypted)
    once, here, as the document is read, and only its mask is kept: the number reaches
    neither Redis nor a resolver."""

    source = Source.REGISTRY
    collection = LEGAL_REPRESENTATIVES

    def transform(self, doc: Document) -> Document:
        try:
            masked: str | None = mask_id_number(stored_id_number(self._sources, doc))
        except PiiError as exc:
            # A key taken out of PII_ENCRYPTION_KEYS too early, or a tampered value:
            # the mask is withheld, the rest of the archive served.
            log.error("legal representative of %s: %s", doc["_id"], exc)
            masked = None
        return {"_id": doc["_id"], "name": doc["name"], "masked_id_number": masked}


def stored_id_number(sources: Sources, doc: Document) -> str:
    """The number a legal representative's document holds: opened if sealed; a value
    stored before encryption (``rotate-keys`` seals those) as it is."""
    value = doc["id_number"]
    if is_sealed(value):
        return sources.pii.open(doc["_id"], value)
    return str(value)


class Verification(enum.Enum):
    MATCH = "MATCH"
    MISMATCH = "MISMATCH"
    NOT_FOUND = "NOT_FOUND"


async def verify_legal_representative(
    sources: Sources, uscc: str, name: str, id_number: str, *, deadline: float | None = None
) -> Verification:
    """Does this name and ID number match the enterprise's legal representative?

    Read straight from MongoDB, never through the cache, and compared in constant time
    through the keyed blind index; only the yes/no leaves this function.
    """
    try:
        with source_timeout(sources, deadline):
            doc = await sources.collection(Source.REGISTRY, LEGAL_REPRESENTATIVES).find_one(
                {"_id": uscc}, {"name": 1, "id_number": 1}
            )
    except PyMongoError:
        raise source_error(Source.REGISTRY, deadline) from None
    if doc is None:
        return Verification.NOT_FOUND
    stored = doc["id_number"]
    if is_sealed(stored):
        # Through the blind index: the stored number is never opened to answer.
        same_id = sources.pii.matches(uscc, stored, id_number)
    else:
        same_id = hmac.compare_digest(str(stored).encode(), id_number.encode())
    same_name = hmac.compare_digest(doc["name"].encode(), name.encode())
    return Verification.MATCH if same_id and same_name else Verification.MISMATCH
