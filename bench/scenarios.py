"""The scenarios of `make bench`: one operation each, sent by wrk with variables drawn
at random from the seeded USCCs, to the gateway and to the floor (bench/floor.py)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCENARIOS", "Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    #: "anonymous" or "member": who sends it.
    viewer: str
    query: str
    #: USCCs per request (badges); 0: one USCC as ``$u`` (archives); None: a search cursor.
    usccs: int | None
    description: str


BADGE = (
    "query($u: [String!]!) { integrityBadges(usccs: $u) { uscc name verified grade serviceState } }"
)
PUBLIC = (
    "query($u: USCC!) { enterprise(uscc: $u) { uscc name kind region { code name province } "
    "status establishedOn registeredAddress registeredCapital { amount currency } "
    "businessScope legalRepresentative { name } } }"
)
WHOLE = """query($u: USCC!) { enterprise(uscc: $u) {
  name region { name } registeredCapital { amount } changeRecords { edges { node { item } } }
  legalRepresentative { maskedIdNumber } identityAuthentication { verified status method }
  integrityLevel { grade } serviceStatus { state reason }
  businessFiles { platform storeCount stores { edges { node { name } } }
    chengxintong { buyerCount } certifications { edges { node { agency } } }
    riskRecords { edges { node { title } } } } } }"""
SEARCH = """query($a: String) { enterprises(first: 50, after: $a) { edges { node { uscc name
  identityAuthentication { verified } integrityLevel { grade }
  businessFiles { platform storeCount } } } pageInfo { hasNextPage endCursor } } }"""

SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("badge", "anonymous", BADGE, 1, "one badge, anonymous (grade denied)"),
        Scenario("badges-100", "anonymous", BADGE, 100, "100 badges, anonymous"),
        Scenario("archive-public", "anonymous", PUBLIC, 0, "public archive, 10 fields, anonymous"),
        Scenario("archive-whole", "member", WHOLE, 0, "whole archive, member (denials included)"),
        Scenario("search-50", "member", SEARCH, None, "search page of 50, member"),
    )
}
