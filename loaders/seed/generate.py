"""Deterministic synthetic archives: one enterprise's documents in every source.

Enterprise ``i`` draws only from ``Random(f"{random_seed}:{i}")``, so its documents do
not depend on how many enterprises are seeded: a seed of 100 is the first 100 of a
seed of 10,000. Dates count back from a fixed ``AS_OF``, never from today.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

from bson import Decimal128

from gateway.settings import Source
from loaders import identity, integrity, platforms, registry, search
from loaders.codes import USCC_ALPHABET, id_number_check_char, uscc_check_chars
from loaders.regions import PROVINCES, SEEDED_DIVISIONS, division
from loaders.seed import vocabulary as v

__all__ = ["AS_OF", "Batch", "generate_enterprise"]

AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
Document = dict[str, Any]
Batch = defaultdict[tuple[Source, str], list[Document]]

_KINDS = (("91", 0.75), ("92", 0.18), ("93", 0.07))
_PLATFORM_PRESENCE = {
    Source.PLATFORM_1688: 0.7,
    Source.PLATFORM_TAOBAO: 0.6,
    Source.PLATFORM_TMALL: 0.3,
    Source.PLATFORM_ALIBABA_COM: 0.35,
}


def _day(
    rng: random.Random,
    start_days_ago: int,
    end_days_ago: int = 0,
    *,
    after: dt.datetime | None = None,
) -> dt.datetime:
    """A day between ``start_days_ago`` and ``end_days_ago`` before AS_OF; with
    ``after`` (an enterprise's establishment), never on or before it: a day drawn too
    early is folded into what is left of the range (the same draw either way, so the
    rest of the data set does not move)."""
    day = AS_OF - dt.timedelta(days=rng.randint(end_days_ago, start_days_ago))
    if after is None or day > after:
        return day
    latest = AS_OF - dt.timedelta(days=end_days_ago)
    span = (latest - after).days
    if span < 1:
        return latest
    return after + dt.timedelta(days=1 + (after - day).days % span)


def _money(amount: int) -> dict[str, Any]:
    return {"amount": Decimal128(Decimal(amount)), "currency": "CNY"}


def _person(rng: random.Random) -> str:
    return rng.choice(v.SURNAMES) + "".join(rng.choices(v.GIVEN_CHARS, k=rng.choice((1, 2))))


def _place(code: str) -> str:
    """A short place name for a trade name: the prefecture, else the province, unsuffixed."""
    region = division(code)
    name = region.name.removeprefix(region.province) or region.province
    for suffix in ("市", "省", "壮族自治区", "回族自治区", "维吾尔自治区", "自治区"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            name = name[: -len(suffix)]
            break
    return name[:2] if len(name) > 3 else name


def _uscc(rng: random.Random, kind: str, code: str) -> str:
    if rng.random() < 0.6:
        body = "MA" + "".join(rng.choices(USCC_ALPHABET, k=6))
    else:
        body = "".join(rng.choices("0123456789", k=8))
    first16 = kind + code + body
    return first16 + uscc_check_chars(first16)


def _county(code: str) -> str:
    """A county-level code to be born in: the code itself, or a seeded county of its province."""
    if not code.endswith("0000"):
        return code
    return next(c for c in SEEDED_DIVISIONS if c[:2] == code[:2] and not c.endswith("00"))


def _id_number(rng: random.Random, code: str) -> str:
    born = dt.date(1958, 1, 1) + dt.timedelta(days=rng.randint(0, 40 * 365))
    first17 = f"{code}{born:%Y%m%d}{rng.randint(1, 999):03d}"
    return first17 + id_number_check_char(first17)


def _name(rng: random.Random, kind: str, code: str, industry: str, owner: str) -> str:
    place = _place(code)
    if kind == "92":
        return f"{place}{owner[0]}记{rng.choice(v.INDIVIDUAL_SHOPS)}"
    if kind == "93":
        return f"{place}{rng.choice(v.TRADE_NAMES)}{rng.choice(v.COOPERATIVE_PRODUCE)}专业合作社"
    suffix = "股份有限公司" if rng.random() < 0.15 else "有限公司"
    return f"{place}{rng.choice(v.TRADE_NAMES)}{v.INDUSTRIES[industry][0]}{suffix}"


def _address(rng: random.Random, code: str) -> str:
    return f"{division(code).name}{rng.choice(v.STREETS)}{rng.randint(1, 999)}号"


def _shareholders(rng: random.Random, kind: str, capital: int) -> list[Document]:
    if kind == "92":
        return []
    count = rng.randint(1, 4) if kind == "91" else rng.randint(5, 8)
    weights = [rng.randint(1, 10) for _ in range(count)]
    total = sum(weights)
    amounts = [capital * weight // total for weight in weights]
    amounts[-1] += capital - sum(amounts)  # the last takes the rounding remainder
    ratios = [(Decimal(weight * 100) / total).quantize(Decimal("0.01")) for weight in weights]
    ratios[-1] += Decimal(100) - sum(ratios)
    holders = []
    for amount, ratio in zip(amounts, ratios, strict=True):
        legal_person = kind == "91" and rng.random() < 0.2
        name = (
            f"{rng.choice(list(PROVINCES.values()))[:2]}{rng.choice(v.TRADE_NAMES)}投资有限公司"
            if legal_person
            else _person(rng)
        )
        holders.append(
            {
                "name": name,
                "kind": "LEGAL_PERSON" if legal_person else "NATURAL_PERSON",
                "subscribed_capital": _money(amount),
                "ratio_percent": Decimal128(ratio),
            }
        )
    return holders


def _change_records(rng: random.Random, uscc: str, current: Document) -> list[Document]:
    """Changes that lead to the current particulars: each "after" is what the archive says now."""
    records = []
    established: dt.datetime = current["established_on"]
    age_days = (AS_OF - established).days
    for seq in range(1, rng.randint(0, 5) + 1):
        item = rng.choice(v.CHANGE_ITEMS)
        if item == "注册资本变更":
            capital = int(current["registered_capital"]["amount"].to_decimal())
            before, after = _capital_text(capital * rng.randint(2, 8) // 10), _capital_text(capital)
        elif item == "法定代表人变更":
            before, after = _person(rng), current["legal_representative_name"]
        elif item == "股东变更":
            names = [h["name"] for h in current["shareholders"]] or [_person(rng)]
            before, after = _person(rng), "、".join(names)
        elif item == "住所变更":
            before, after = _address(rng, current["division"]), current["address"]
        elif item == "名称变更":
            name = current["name"]
            before, after = name.replace(name[2:4], rng.choice(v.TRADE_NAMES), 1), name
        else:
            scope = current["business_scope"]
            before, after = scope.split("；")[0].rstrip("。") + "。", scope
        records.append(
            {
                "_id": f"{uscc}-{seq:03d}",
                "uscc": uscc,
                "seq": seq,
                "date": _day(rng, max(age_days - 1, 1)),
                "item": item,
                "before": before,
                "after": after,
            }
        )
    return records


def _capital_text(amount: int) -> str:
    return f"{Decimal(amount) / 10_000:f}万元人民币"


def _authentication(rng: random.Random, uscc: str, established: dt.datetime) -> Document | None:
    roll = rng.random()
    if roll < 0.1:
        return None  # never applied: the archive reports "not verified"
    verified_at = _day(rng, 900, 10, after=established)
    status = "VERIFIED" if roll < 0.75 else rng.choice(("PENDING", "EXPIRED", "REJECTED"))
    expires_at = verified_at + dt.timedelta(days=365 * 3)
    if status == "EXPIRED":
        # Expired some days ago, and after it was verified.
        expires_at = max(
            AS_OF - dt.timedelta(days=rng.randint(1, 200)), verified_at + dt.timedelta(days=1)
        )
    return {
        "_id": uscc,
        "verified": status == "VERIFIED",
        "status": status,
        "verified_at": verified_at if status != "PENDING" else None,
        "expires_at": expires_at if status != "PENDING" else None,
        "method": rng.choice(v.AUTH_METHODS),
        "evidence_ref": f"EV-{verified_at:%Y%m%d}-{rng.randint(0, 16**8 - 1):08X}",
    }


def _service_status(rng: random.Random, uscc: str, established: dt.datetime) -> Document:
    roll = rng.random()
    status, reason = "ACTIVE", None
    if roll < 0.05:
        status, reason = "SUSPENDED", rng.choice(v.SUSPENSION_REASONS)
    elif roll < 0.08:
        status, reason = "TERMINATED", rng.choice(v.TERMINATION_REASONS)
    return {
        "_id": uscc,
        "status": status,
        "reason": reason,
        "since": _day(rng, 700, 1, after=established),
    }


def _level(rng: random.Random, uscc: str, established: dt.datetime) -> Document:
    score = rng.randint(420, 990)
    grade = v.GRADES[min(len(v.GRADES) - 1, max(0, (990 - score) // 65))]
    evaluated = _day(rng, 300, 1, after=established)
    return {
        "_id": uscc,
        "grade": grade,
        "score": score,
        "evaluated_at": evaluated,
        "valid_until": evaluated + dt.timedelta(days=365),
    }


def _platform_file(
    rng: random.Random,
    batch: Batch,
    source: Source,
    uscc: str,
    name: str,
    code: str,
    cats: tuple[str, ...],
    established: dt.datetime,
) -> None:
    short = source.value.removeprefix("platform_")
    stores = []
    for n in range(1, rng.choice((1, 1, 1, 2, 2, 3)) + 1):
        stores.append(
            {
                "_id": f"{short}-{uscc}-{n}",
                "uscc": uscc,
                "name": name.removesuffix("有限公司").removesuffix("股份")
                + ("旗舰店" if n == 1 else f"{n}号店"),
                "address": _address(rng, code),
                "main_categories": rng.sample(cats, k=min(len(cats), rng.randint(1, 3))),
                "status": rng.choices(("OPEN", "CLOSED", "SUSPENDED"), weights=(85, 10, 5))[0],
                "opened_on": _day(rng, 3000, 30, after=established),
            }
        )
    batch[(source, platforms.STORES)].extend(stores)
    counts = {"DISPUTE": 0, "COMPLAINT": 0, "PUNISHMENT": 0}
    titles = {
        "DISPUTE": v.DISPUTE_TITLES,
        "COMPLAINT": v.COMPLAINT_TITLES,
        "PUNISHMENT": v.PUNISHMENT_TITLES,
    }
    for n in range(1, rng.choice((0, 0, 0, 1, 1, 2, 3)) + 1):
        kind = rng.choice(tuple(counts))
        counts[kind] += 1
        occurred = _day(rng, 1000, 5, after=established)
        outcome = rng.choice(v.RISK_OUTCOMES)
        batch[(source, platforms.RISK_RECORDS)].append(
            {
                "_id": f"{short}-{uscc}-r{n}",
                "uscc": uscc,
                "kind": kind,
                "occurred_on": occurred,
                "title": rng.choice(titles[kind]),
                "outcome": outcome,
                "resolved_on": None
                if outcome == "处理中"
                else occurred + dt.timedelta(days=rng.randint(1, 60)),
            }
        )
    batch[(source, platforms.STATISTICS)].append(
        {
            "_id": uscc,
            "store_count": len(stores),
            "dispute_count": counts["DISPUTE"],
            "complaint_count": counts["COMPLAINT"],
            "punishment_count": counts["PUNISHMENT"],
        }
    )
    if source == Source.PLATFORM_1688:
        batch[(source, platforms.CHENGXINTONG)].append(
            {
                "_id": uscc,
                "years_open": rng.randint(1, 18),
                "cumulative_transactions": rng.randint(10, 500_000),
                "buyer_count": rng.randint(5, 80_000),
                "repeat_purchase_rate": Decimal128(Decimal(rng.randint(500, 6500)) / 100),
            }
        )
    if source in platforms.CERTIFYING_PLATFORMS and rng.random() < 0.3:
        certified = _day(rng, 1500, 10, after=established)
        batch[(source, platforms.CERTIFICATIONS)].append(
            {
                "_id": f"{short}-{uscc}-c1",
                "uscc": uscc,
                "agency": rng.choice(v.CERTIFICATION_AGENCIES),
                "certified_on": certified,
                "valid_until": certified + dt.timedelta(days=365),
                "result": rng.choices(("PASSED", "CONDITIONAL", "FAILED"), weights=(85, 10, 5))[0],
            }
        )


def generate_enterprise(batch: Batch, index: int, random_seed: int, taken: set[str]) -> str:
    """Append enterprise ``index``'s documents for every source to ``batch``; its USCC."""
    rng = random.Random(f"{random_seed}:{index}")
    kind = rng.choices([k for k, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
    code = rng.choice(SEEDED_DIVISIONS)
    uscc = _uscc(rng, kind, code)
    while (
        uscc in taken
    ):  # astronomically rare; redrawn from the same stream, so still deterministic
        uscc = _uscc(rng, kind, code)
    taken.add(uscc)

    industry = rng.choice(tuple(v.INDUSTRIES))
    representative = _person(rng)
    name = _name(rng, kind, code, industry, representative)
    established = _day(rng, 9000, 60)
    capital = rng.choice((3, 5, 10, 50, 100, 200, 500, 1000, 5000)) * 10_000
    status = rng.choices(
        ("IN_BUSINESS", "REVOKED", "CANCELLED", "MOVED_OUT", "LIQUIDATING"),
        weights=(88, 4, 4, 2, 2),
    )[0]
    region = division(code)
    scope = {"92": "零售：日用百货、五金交电。", "93": v.COOPERATIVE_SCOPE}.get(
        kind, v.INDUSTRIES[industry][1]
    )
    operating_to = None
    if kind == "91" and rng.random() < 0.4:
        operating_to = established.replace(
            year=established.year + rng.choice((20, 30, 50)), day=min(established.day, 28)
        )

    enterprise = {
        "_id": uscc,
        "name": name,
        "division": code,
        "status": status,
        "operating_from": established,
        "operating_to": operating_to,
        "address": _address(rng, code),
        "established_on": established,
        "registered_capital": _money(capital),
        "business_scope": scope,
        "authority": f"{region.name}市场监督管理局",
        "legal_representative_name": representative,
        "shareholders": _shareholders(rng, kind, capital),
        "updated_at": _day(rng, 60),
    }
    batch[(Source.REGISTRY, registry.ENTERPRISES)].append(enterprise)
    batch[(Source.REGISTRY, registry.CHANGE_RECORDS)].extend(_change_records(rng, uscc, enterprise))
    batch[(Source.REGISTRY, registry.LEGAL_REPRESENTATIVES)].append(
        {"_id": uscc, "name": representative, "id_number": _id_number(rng, _county(code))}
    )
    authentication = _authentication(rng, uscc, established)
    if authentication is not None:
        batch[(Source.IDENTITY, identity.AUTHENTICATIONS)].append(authentication)
    batch[(Source.INTEGRITY, integrity.LEVELS)].append(_level(rng, uscc, established))
    batch[(Source.INTEGRITY, integrity.SERVICE_STATUS)].append(
        _service_status(rng, uscc, established)
    )
    present = []
    for source, presence in _PLATFORM_PRESENCE.items():
        if rng.random() < presence:
            _platform_file(
                rng, batch, source, uscc, name, code, v.INDUSTRIES[industry][2], established
            )
            present.append(source.value)
    batch[(Source.REGISTRY, search.SEARCH)].append(
        search.search_document(uscc, name, code, status, present)
    )
    return uscc
