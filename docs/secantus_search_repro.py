"""A minimal reproduction of how SecantusDB 0.7.0b3 executes indexed finds.

Run against any SecantusDB server (``python -m secantus --port 27018``) or, to compare,
a MongoDB server: ``python docs/secantus_search_repro.py mongodb://127.0.0.1:27018 20000``.
It fills ``repro.items`` with N documents ``{_id, tag, pad}`` (tag "common" on every
other document, "rare" on none), indexes ``{tag: 1, _id: 1}`` and times five finds,
printing each one's milliseconds and what ``explain`` reports.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pymongo import MongoClient


def stages(plan: dict[str, Any]) -> str:
    names = []
    while plan:
        names.append(plan["stage"])
        plan = plan.get("inputStage", {})
    return " <- ".join(names)


def main(url: str, count: int) -> None:
    items = MongoClient(url).repro.items
    items.drop()
    items.insert_many(
        {"_id": f"{i:08d}", "tag": "common" if i % 2 else "other", "pad": "x" * 200}
        for i in range(count)
    )
    items.create_index([("tag", 1), ("_id", 1)], name="tag_id")
    middle = f"{count // 2:08d}"
    cases = {
        "1 equality, nothing matches": (items.find({"tag": "rare"}), 0),
        "2 same, hinted": (items.find({"tag": "rare"}).hint("tag_id"), 0),
        "3 equality + _id range, sort, limit 10": (
            items.find({"tag": "common", "_id": {"$gt": middle}}).sort("_id", 1).limit(10),
            10,
        ),
        "4 same + a second operator field": (
            items.find({"tag": "common", "_id": {"$gt": middle}, "pad": {"$regex": "x"}})
            .sort("_id", 1)
            .limit(10),
            10,
        ),
        "5 _id range alone, limit 10": (items.find({"_id": {"$gt": middle}}).limit(10), 10),
    }
    for label, (cursor, expected) in cases.items():
        explained = cursor.clone().explain()
        started = time.perf_counter()
        found = len(list(cursor))
        ms = (time.perf_counter() - started) * 1000
        stats = explained.get("executionStats", {})
        print(
            f"{label:42} {ms:8.1f} ms  returned {found} (expected {expected})  "
            f"{stages(explained['queryPlanner']['winningPlan'])}  keys examined "
            f"{stats.get('totalKeysExamined')}  docs examined {stats.get('totalDocsExamined')}"
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
