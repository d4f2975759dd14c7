"""GB/T 2260 administrative divisions: every mainland province and a few dozen
prefectures and counties where the demo enterprises are registered.

A USCC's positions 3-8 are the division code of its registration authority. A code
this table does not list still resolves to its prefecture or province.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROVINCES", "SEEDED_DIVISIONS", "Division", "division"]

PROVINCES: dict[str, str] = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
    "21": "辽宁省", "22": "吉林省", "23": "黑龙江省", "31": "上海市", "32": "江苏省",
    "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
    "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区",
    "46": "海南省", "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省",
    "54": "西藏自治区", "61": "陕西省", "62": "甘肃省", "63": "青海省",
    "64": "宁夏回族自治区", "65": "新疆维吾尔自治区",
}  # fmt: skip

#: Prefecture (``xxxx00``) and county (``xxxxxx``) names, by code.
_LOCAL: dict[str, str] = {
    "110101": "东城区", "110102": "西城区", "110105": "朝阳区", "110108": "海淀区",
    "120101": "和平区", "120116": "滨海新区",
    "310101": "黄浦区", "310104": "徐汇区", "310115": "浦东新区",
    "320100": "南京市", "320102": "玄武区", "320500": "苏州市", "320505": "虎丘区",
    "330100": "杭州市", "330102": "上城区", "330106": "西湖区", "330108": "滨江区",
    "330110": "余杭区", "330200": "宁波市", "330700": "金华市", "330782": "义乌市",
    "340600": "淮北市", "340602": "杜集区",
    "350200": "厦门市", "350203": "思明区",
    "370200": "青岛市", "370202": "市南区",
    "410100": "郑州市", "410105": "金水区",
    "420100": "武汉市", "420106": "武昌区",
    "430100": "长沙市", "430104": "岳麓区",
    "440100": "广州市", "440106": "天河区", "440300": "深圳市", "440304": "福田区",
    "440305": "南山区", "440306": "宝安区", "440600": "佛山市", "441900": "东莞市",
    "500103": "渝中区",
    "510100": "成都市", "510104": "锦江区",
    "610100": "西安市", "610113": "雁塔区",
    "620100": "兰州市", "620105": "安宁区",
}  # fmt: skip

#: Codes the seeder registers demo enterprises under: province-level ones and counties.
SEEDED_DIVISIONS: tuple[str, ...] = (
    "110000", "110101", "110105", "110108", "120116", "310000", "310104", "310115",
    "320102", "320505", "330000", "330106", "330108", "330110", "330782", "340602",
    "350203", "370202", "410105", "420106", "430104", "440000", "440106", "440304",
    "440305", "440306", "441900", "500103", "510104", "610113", "620105",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name: str
    province: str


def division(code: str) -> Division:
    """The division a six-digit code names, as precisely as the table allows."""
    province = PROVINCES.get(code[:2], "")
    parts = [province]
    prefecture = _LOCAL.get(code[:4] + "00")
    if prefecture and prefecture != province:
        parts.append(prefecture)
    county = _LOCAL.get(code) if not code.endswith("00") else None
    if county:
        parts.append(county)
    return Division(code=code, name="".join(parts), province=province)
