"""The audit trail of one request: sensitive reads by anyone but the owner.

Reads are collected while the request runs and written once, after the response
has been sent (loaders/audit.py), so auditing never delays an answer.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from gateway.viewer import Viewer

__all__ = ["AuditTrail"]


class AuditTrail:
    def __init__(self, viewer: Viewer, request_id: str) -> None:
        self.viewer = viewer
        self.request_id = request_id
        self._reads: defaultdict[str, set[str]] = defaultdict(set)
        self._actions: list[dict[str, Any]] = []

    def read(self, enterprise: str | None, path: str) -> None:
        """A sensitive field at response ``path`` (list indices left out) was served."""
        self._reads[enterprise or "-"].add(path)

    def action(self, enterprise: str, action: str, outcome: str) -> None:
        """A sensitive operation (such as verifying an ID number) and its outcome."""
        self._actions.append({"enterprise": enterprise, "action": action, "outcome": outcome})

    def __bool__(self) -> bool:
        return bool(self._reads or self._actions)

    def records(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """One record per enterprise read, and one per action; no field values, ever."""
        at = now or dt.datetime.now(dt.UTC)
        viewer = self.viewer
        common = {
            "viewer": {
                "kind": viewer.kind,
                "subject": viewer.subject,
                "platform": getattr(viewer, "platform", None),
            },
            "request_id": self.request_id,
            "at": at,
        }
        reads = [
            {**common, "enterprise": enterprise, "action": "read", "fields": sorted(paths)}
            for enterprise, paths in sorted(self._reads.items())
        ]
        return reads + [{**common, **action} for action in self._actions]
