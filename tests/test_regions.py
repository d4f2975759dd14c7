"""The GB/T 2260 division table: names for real codes across provinces, codes abolished
since 2015, and the committed table being what its pinned packages give."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from loaders.codes import uscc_check_chars
from loaders.regions import ABOLISHED, PROVINCES, division
from tests.test_deployment import NODE_TESTS, ROOT, node_or_skip


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("110108", "北京市海淀区"),
        ("310115", "上海市浦东新区"),
        ("330782", "浙江省金华市义乌市"),
        ("330113", "浙江省杭州市临平区"),  # created in 2021
        ("440306", "广东省深圳市宝安区"),
        ("441900", "广东省东莞市"),  # a prefecture-level city without counties
        ("469001", "海南省五指山市"),  # a county-level city directly under the province
        ("510704", "四川省绵阳市游仙区"),
        ("540102", "西藏自治区拉萨市城关区"),
        ("653101", "新疆维吾尔自治区喀什地区喀什市"),
        ("230100", "黑龙江省哈尔滨市"),
        ("620000", "甘肃省"),
    ],
)
def test_a_current_code_names_its_province_prefecture_and_county(code: str, name: str) -> None:
    assert division(code).name == name
    assert code not in ABOLISHED


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("110228", "北京市密云县"),  # a district since 2015 (110118)
        ("330185", "浙江省杭州市临安市"),  # a district since 2017 (330112)
        ("130421", "河北省邯郸市邯郸县"),  # merged into districts in 2016
        ("139001", "河北省定州市"),  # directly under Hebei until 2016 (130682 now)
    ],
)
def test_a_code_abolished_since_2015_still_resolves(code: str, name: str) -> None:
    assert division(code).name == name
    assert code in ABOLISHED


def test_an_unlisted_code_resolves_to_its_prefecture_or_province() -> None:
    assert division("330199").name == "浙江省杭州市"
    assert division("339999").name == "浙江省"


def test_the_31_mainland_provinces() -> None:
    assert len(PROVINCES) == 31
    assert (PROVINCES["11"], PROVINCES["45"], PROVINCES["65"]) == (
        "北京市",
        "广西壮族自治区",
        "新疆维吾尔自治区",
    )


async def test_an_archive_names_a_county_the_seed_never_uses(
    client: httpx.AsyncClient, seeded: list[str], mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    """An enterprise registered in Mianyang's Youxian district (510704): its region is
    read from its USCC's division code."""
    registry = mongo["registry"]["enterprises"]
    doc = await registry.find_one({"_id": seeded[0]})
    assert doc is not None
    first16 = f"{seeded[0][:2]}510704{seeded[0][8:16]}"
    uscc = first16 + uscc_check_chars(first16)
    await registry.insert_one({**doc, "_id": uscc, "division": "510704"})
    try:
        answer = await client.post(
            "/graphql",
            json={
                "query": "query($u: USCC!) "
                "{ enterprise(uscc: $u) { region { code name province } } }",
                "variables": {"u": uscc},
            },
        )
    finally:
        await registry.delete_one({"_id": uscc})
    assert answer.json()["data"] == {
        "enterprise": {
            "region": {"code": "510704", "name": "四川省绵阳市游仙区", "province": "四川省"}
        }
    }


def test_the_committed_table_is_what_the_pinned_packages_give() -> None:
    node = node_or_skip()
    generated = subprocess.run(
        [node, str(NODE_TESTS / "divisions.mjs")],
        check=True,
        capture_output=True,
        text=True,
        cwd=NODE_TESTS,
    ).stdout
    committed = (ROOT / "loaders" / "data" / "divisions.tsv").read_text(encoding="utf-8")
    assert generated == committed
