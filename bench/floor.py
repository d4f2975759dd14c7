"""The floor: the least work this stack can do for each scenario's answer. Not the product.

A Starlette handler per scenario on the same uvicorn (uvloop, httptools, one worker, no
access log): it parses the JSON body, reads the very Redis entries the gateway's loaders
wrote (one MGET; the search page two, the page then its documents), BSON-decodes them,
picks the fields and writes, with orjson, the JSON the gateway writes for the same
request, byte for byte, ``errors`` and ``extensions`` included. No GraphQL, no loaders,
no caching in process: every request does its Redis read.

    python bench/floor.py --port 8200 --redis redis://127.0.0.1:6379/0 --cursor-secret S
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

import bson
import orjson
import uvicorn
from bson.codec_options import CodecOptions
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loaders.regions import division

CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
PLATFORMS = (
    ("platform_1688", "ALIBABA_1688"),
    ("platform_taobao", "TAOBAO"),
    ("platform_tmall", "TMALL"),
    ("platform_alibaba_com", "ALIBABA_COM"),
)
CERTIFYING = {"platform_1688", "platform_alibaba_com"}
KINDS = {"91": "ENTERPRISE", "92": "INDIVIDUAL_BUSINESS", "93": "COOPERATIVE"}


def key(source: str, collection: str, uscc: str, field: str = "_id") -> str:
    return f"ig:2:{source}:{collection}:{field}:{uscc}"


def unpack(raw: bytes | None) -> Any:
    return None if raw is None else bson.decode(raw, codec_options=CODEC)["v"]


def verified(doc: dict[str, Any] | None) -> bool:
    if doc is None or not doc["verified"]:
        return False
    return doc["expires_at"] is None or doc["expires_at"] > dt.datetime.now(dt.UTC)


def withheld(status: dict[str, Any] | None) -> str | None:
    if status is None or status["status"] == "ACTIVE":
        return None
    return f"Integrity level withheld: the enterprise's service is {status['status'].lower()}."


def error(message: str, line: int, column: int, path: list[Any], code: str) -> dict[str, Any]:
    return {
        "message": message,
        "locations": [{"line": line, "column": column}],
        "path": path,
        "extensions": {"code": code},
    }


def answer(data: Any, errors: list[Any], cost: int, limit: int) -> Response:
    body: dict[str, Any] = {"data": data}
    if errors:
        body["errors"] = errors
    body["extensions"] = {"cost": {"requested": cost, "limit": limit}}
    return Response(orjson.dumps(body), media_type="application/json")


class Floor:
    def __init__(self, redis: Redis, cursor_secret: bytes) -> None:
        self.redis = redis
        self.secret = cursor_secret

    async def mget(self, keys: Sequence[str]) -> list[Any]:
        return [unpack(raw) for raw in await self.redis.mget(keys)]

    async def badges(self, request: Request) -> Response:
        usccs = orjson.loads(await request.body())["variables"]["u"]
        keys = []
        for uscc in usccs:
            keys += [
                key("registry", "enterprises", uscc),
                key("identity", "authentications", uscc),
                key("integrity", "service_status", uscc),
            ]
        docs = await self.mget(keys)
        data, errors = [], []
        for index, uscc in enumerate(usccs):
            enterprise, authentication, status = docs[3 * index : 3 * index + 3]
            if enterprise is None:
                data.append(None)
                continue
            data.append(
                {
                    "uscc": uscc,
                    "name": enterprise["name"],
                    "verified": verified(authentication),
                    "grade": None,
                    "serviceState": status["status"] if status is not None else None,
                }
            )
            errors.append(
                error(
                    "Log in to see grade (tier MEMBER).",
                    1,
                    73,
                    ["integrityBadges", index, "grade"],
                    "UNAUTHENTICATED",
                )
            )
        return answer({"integrityBadges": data}, errors, 10 * len(usccs), 1200)

    async def archive_public(self, request: Request) -> Response:
        uscc = orjson.loads(await request.body())["variables"]["u"]
        [doc] = await self.mget([key("registry", "enterprises", uscc)])
        region = division(doc["division"])
        data = {
            "uscc": uscc,
            "name": doc["name"],
            "kind": KINDS.get(uscc[:2], "OTHER"),
            "region": {"code": region.code, "name": region.name, "province": region.province},
            "status": doc["status"],
            "establishedOn": doc["established_on"].date().isoformat(),
            "registeredAddress": doc["address"],
            "registeredCapital": {
                "amount": str(doc["registered_capital"]["amount"].to_decimal()),
                "currency": doc["registered_capital"]["currency"],
            },
            "businessScope": doc["business_scope"],
            "legalRepresentative": {"name": doc["legal_representative_name"]},
        }
        return answer({"enterprise": data}, [], 13, 1200)

    async def archive_whole(self, request: Request) -> Response:
        uscc = orjson.loads(await request.body())["variables"]["u"]
        keys = [
            key("registry", "enterprises", uscc),
            key("registry", "change_records", uscc, "uscc"),
            key("identity", "authentications", uscc),
            key("integrity", "levels", uscc),
            key("integrity", "service_status", uscc),
            key("platform_1688", "chengxintong", uscc),
        ]
        for source, _ in PLATFORMS:
            keys += [key(source, "statistics", uscc), key(source, "stores", uscc, "uscc")]
            if source in CERTIFYING:
                keys.append(key(source, "certifications", uscc, "uscc"))
        docs = iter(await self.mget(keys))
        enterprise, changes, authentication, level, status, chengxintong = (
            next(docs) for _ in range(6)
        )
        errors = [
            error(
                "maskedIdNumber needs tier OWNER.",
                3,
                25,
                ["enterprise", "legalRepresentative", "maskedIdNumber"],
                "FORBIDDEN",
            ),
            error(
                "method needs tier OWNER or scope identity:read.",
                3,
                83,
                ["enterprise", "identityAuthentication", "method"],
                "FORBIDDEN",
            ),
        ]
        reason = withheld(status)
        if reason is not None:
            errors.append(
                error(reason, 4, 3, ["enterprise", "integrityLevel"], "SERVICE_SUSPENDED")
            )
        if status is not None:
            errors.append(
                error(
                    "reason needs tier OWNER.",
                    4,
                    50,
                    ["enterprise", "serviceStatus", "reason"],
                    "FORBIDDEN",
                )
            )
        files = []
        for index, (source, platform) in enumerate(PLATFORMS):
            statistics, stores = next(docs), next(docs)
            certifications = next(docs) if source in CERTIFYING else None
            files.append(
                {
                    "platform": platform,
                    "storeCount": statistics["store_count"] if statistics is not None else 0,
                    "stores": {"edges": [{"node": {"name": s["name"]}} for s in stores[:10]]},
                    "chengxintong": {"buyerCount": chengxintong["buyer_count"]}
                    if source == "platform_1688" and chengxintong is not None
                    else None,
                    "certifications": {
                        "edges": [{"node": {"agency": c["agency"]}} for c in certifications[:10]]
                    }
                    if certifications is not None
                    else None,
                    "riskRecords": None,
                }
            )
            errors.append(
                error(
                    "riskRecords needs tier OWNER or scope risk:read.",
                    7,
                    5,
                    ["enterprise", "businessFiles", index, "riskRecords"],
                    "FORBIDDEN",
                )
            )
        data = {
            "name": enterprise["name"],
            "region": {"name": division(enterprise["division"]).name},
            "registeredCapital": {
                "amount": str(enterprise["registered_capital"]["amount"].to_decimal())
            },
            "changeRecords": {"edges": [{"node": {"item": c["item"]}} for c in changes[:10]]},
            "legalRepresentative": {"maskedIdNumber": None},
            "identityAuthentication": {
                "verified": verified(authentication),
                "status": authentication["status"] if authentication else "NOT_APPLIED",
                "method": None,
            },
            "integrityLevel": None
            if reason is not None or level is None
            else {"grade": level["grade"]},
            "serviceStatus": {"state": status["status"], "reason": None}
            if status is not None
            else None,
            "businessFiles": files,
        }
        return answer({"enterprise": data}, errors, 297, 10000)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def cursor(self, uscc: str, page: int, fingerprint: str) -> str:
        payload = f"{uscc}:{page}:{fingerprint}"
        return base64.urlsafe_b64encode(f"{payload}:{self._sign(payload)}".encode()).decode()

    async def search(self, request: Request) -> Response:
        after = orjson.loads(await request.body())["variables"]["a"]
        fingerprint = hashlib.sha256(b"None|None|None|None|None").hexdigest()[:16]
        last, page = None, 1
        if after is not None:
            last, previous, _, mac = base64.urlsafe_b64decode(after).decode().split(":")
            assert hmac.compare_digest(mac, self._sign(f"{last}:{previous}:{fingerprint}"))
            page = int(previous) + 1
        # The page and the search generation it must have been computed in, as the
        # gateway reads them: one MGET.
        pages, generation = await self.redis.mget(
            [
                key("registry", "enterprise_search", f"{fingerprint}:{last}:50", "pages"),
                "ig:2:search-generation",
            ]
        )
        shown, more, resume, computed_in = unpack(pages)
        assert computed_in == generation
        keys = []
        for uscc in shown:
            keys += [
                key("registry", "enterprises", uscc),
                key("identity", "authentications", uscc),
                key("integrity", "levels", uscc),
                key("integrity", "service_status", uscc),
                *(key(source, "statistics", uscc) for source, _ in PLATFORMS),
            ]
        docs = await self.mget(keys)
        edges, errors = [], []
        for index, uscc in enumerate(shown):
            enterprise, authentication, level, status, *statistics = docs[8 * index : 8 * index + 8]
            reason = withheld(status)
            if reason is not None:
                errors.append(
                    error(
                        reason,
                        2,
                        39,
                        ["enterprises", "edges", index, "node", "integrityLevel"],
                        "SERVICE_SUSPENDED",
                    )
                )
            edges.append(
                {
                    "node": {
                        "uscc": uscc,
                        "name": enterprise["name"],
                        "identityAuthentication": {"verified": verified(authentication)},
                        "integrityLevel": None
                        if reason is not None or level is None
                        else {"grade": level["grade"]},
                        "businessFiles": [
                            {
                                "platform": platform,
                                "storeCount": stats["store_count"] if stats is not None else 0,
                            }
                            for (_, platform), stats in zip(PLATFORMS, statistics, strict=True)
                        ],
                    }
                }
            )
        data = {
            "enterprises": {
                "edges": edges,
                "pageInfo": {
                    "hasNextPage": more,
                    "endCursor": self.cursor(resume or shown[-1], page, fingerprint)
                    if resume or shown
                    else None,
                },
            }
        }
        return answer(data, errors, 1 + 50 + 50 * (10 + 1 + 1 + 4) + 1, 10000)


def create_floor(redis_url: str, cursor_secret: str) -> Starlette:
    floor = Floor(Redis.from_url(redis_url, max_connections=64), cursor_secret.encode())
    handlers: dict[str, Callable[[Request], Any]] = {
        "badge": floor.badges,
        "badges-100": floor.badges,
        "archive-public": floor.archive_public,
        "archive-whole": floor.archive_whole,
        "search-50": floor.search,
    }
    return Starlette(
        routes=[Route(f"/{name}", handler, methods=["POST"]) for name, handler in handlers.items()]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--cursor-secret", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_floor(args.redis, args.cursor_secret),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
