"""Enterprise search: filtered, ordered by USCC, paged by signed cursors, capped per viewer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import cast

import strawberry
from strawberry.relay import PageInfo

from gateway.settings import Source
from gateway.viewer import Anonymous
from loaders.codes import EntityKind
from loaders.search import SCAN_BUDGET, Criteria, search_page
from resolvers.archive import BusinessStatus, Enterprise
from resolvers.context import Info
from resolvers.errors import bad_user_input, unauthenticated
from resolvers.pagination import DEFAULT_PAGE_SIZE, PAGE_SIZE_RULE, check_first
from resolvers.permissions import Tier, visible
from resolvers.platforms import Platform
from resolvers.prefetch import prefetch_enterprises, selections

__all__ = ["SearchQuery"]

#: Anonymous viewers may page this deep into one search, and no deeper (no enumeration).
ANONYMOUS_MAX_PAGES = 5
_KEYWORD = (2, 50)
_REGION = re.compile(r"^(\d{2}|\d{4}|\d{6})$")


@strawberry.input(description="What to search for; all given criteria must match.")
class EnterpriseFilter:
    keyword: str | None = strawberry.field(
        default=None,
        description="2 to 50 characters contained in the name (a prefix matches too).",
    )
    region: str | None = strawberry.field(
        default=None,
        description="Division-code prefix: 2 digits (province), 4 (prefecture) or 6 (county).",
    )
    kind: EntityKind | None = strawberry.field(default=None, description="Kind of subject.")
    status: BusinessStatus | None = strawberry.field(
        default=None, description="Registration status."
    )
    platform: Platform | None = strawberry.field(
        default=None, description="Only enterprises trading on this platform."
    )


@strawberry.type(description="A search hit.")
class EnterpriseEdge:
    key: strawberry.Private[bytes]
    criteria: strawberry.Private[Criteria]
    page: strawberry.Private[int]

    @visible(Tier.PUBLIC, "Pass as `after` to read the page after this hit.")
    def cursor(self) -> str:
        # Signed when asked for: a page of fifty hits whose cursors nobody selected
        # signs none.
        return encode_cursor(self.key, self.criteria, self.node.enterprise_uscc, self.page)

    node: Enterprise = visible(Tier.PUBLIC, "The enterprise.")


@strawberry.type(description="A page of search hits, in USCC order.")
class EnterpriseConnection:
    edges: list[EnterpriseEdge] = visible(Tier.PUBLIC, "The hits of this page.")
    page_info: PageInfo = visible(Tier.PUBLIC, "Whether there is more, and the cursors.")


def _criteria(given: EnterpriseFilter | None) -> Criteria:
    if given is None:
        return Criteria()
    keyword = given.keyword.strip() if given.keyword is not None else None
    if keyword is not None and not _KEYWORD[0] <= len(keyword) <= _KEYWORD[1]:
        raise bad_user_input(f"keyword must be {_KEYWORD[0]} to {_KEYWORD[1]} characters")
    if given.region is not None and not _REGION.match(given.region):
        raise bad_user_input("region must be a division-code prefix of 2, 4 or 6 digits")
    return Criteria(
        keyword=keyword,
        region=given.region,
        kind=given.kind.value if given.kind is not None else None,
        status=given.status.name if given.status is not None else None,
        platform=cast(Source, given.platform.value) if given.platform is not None else None,
    )


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


def encode_cursor(key: bytes, criteria: Criteria, uscc: str, page: int) -> str:
    payload = f"{uscc}:{page}:{criteria.fingerprint()}"
    return base64.urlsafe_b64encode(f"{payload}:{_sign(key, payload)}".encode()).decode()


def decode_cursor(key: bytes, criteria: Criteria, cursor: str) -> tuple[str, int]:
    """The last USCC and page number a cursor stands for; it must be ours and this search's."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        uscc, page, fingerprint, mac = text.split(":")
        valid = hmac.compare_digest(mac, _sign(key, f"{uscc}:{page}:{fingerprint}"))
    except ValueError:
        valid = False
    if not valid or fingerprint != criteria.fingerprint():
        raise bad_user_input("after is not a cursor returned by this search")
    return uscc, int(page)


@strawberry.type
class SearchQuery:
    @visible(
        Tier.PUBLIC,
        f"Search enterprises, in USCC order. {PAGE_SIZE_RULE}; anonymous viewers may read "
        f"{ANONYMOUS_MAX_PAGES} pages of one search. A page examines at most {SCAN_BUDGET} "
        "enterprises: when the filters reject nearly all of them, a page may hold fewer "
        "hits than asked (even none) with `hasNextPage` true; `endCursor` then goes on "
        "from where it stopped.",
    )
    async def enterprises(
        self,
        info: Info,
        filter: EnterpriseFilter | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> EnterpriseConnection:
        context = info.context
        check_first(context.viewer, first)
        criteria = _criteria(filter)
        last, page = (None, 1)
        if after is not None:
            last, previous = decode_cursor(context.cursor_key, criteria, after)
            page = previous + 1
        if isinstance(context.viewer, Anonymous) and page > ANONYMOUS_MAX_PAGES:
            raise unauthenticated(
                f"Anonymous viewers may read {ANONYMOUS_MAX_PAGES} pages of a search; "
                "log in to read further."
            )
        found = await search_page(
            context.sources,
            context.cache,
            criteria,
            after=last,
            limit=first,
            deadline=context.loaders.deadline,
        )
        raw = info._raw_info
        edges_selected = selections((node.selection_set for node in raw.field_nodes), raw.fragments)
        nodes = selections(
            selections(edges_selected.get("edges", []), raw.fragments).get("node", []),
            raw.fragments,
        )
        # The hits and what their selection needs, in one step (one MGET): the USCCs
        # come from the search, not the client, so loading ahead for a hit whose
        # enterprise has just left the registry costs a few misses and no more.
        hits = context.loaders.enterprise_by_uscc
        (loaded,) = await prefetch_enterprises(info, found.usccs, nodes, also=[(hits, found.usccs)])
        docs = [loaded[uscc] for uscc in found.usccs]
        failed = next((doc for doc in docs if isinstance(doc, BaseException)), None)
        if failed is not None:
            raise failed  # the registry could not give the hits: the page is null
        edges = [
            EnterpriseEdge(
                key=context.cursor_key,
                criteria=criteria,
                page=page,
                node=Enterprise.from_document(doc),
            )
            for doc in docs
            if doc is not None
        ]
        # The next page goes on from the last hit, or from where the scan stopped short
        # of a full page; from the search, not the edges: a hit whose enterprise is
        # gone from the registry (the search collection not yet in step) has no edge.
        position = found.resume or (found.usccs[-1] if found.usccs else None)
        end_cursor = (
            encode_cursor(context.cursor_key, criteria, position, page)
            if position is not None
            else None
        )
        return EnterpriseConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=found.more,
                has_previous_page=page > 1,
                start_cursor=edges[0].cursor() if edges else None,
                end_cursor=end_cursor,
            ),
        )
