"""The audit trail of one request: sensitive reads by anyone but the owner (DESIGN §1).

Resolvers note each sensitive value as it is let through: the enterprise it belongs
to, the field (by schema coordinate, ``Type.field``, so an alias cannot hide it), where
it lies in the response, and the scope that allowed it. Once the operation has run,
``served`` keeps the values the response really holds, ``records`` turns them into one
record per enterprise, and the endpoint writes those before the response leaves
(loaders/audit.py); if it cannot, ``paths`` are what it withholds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from gateway.viewer import Operator, ServiceClient, Viewer

__all__ = ["AuditTrail", "Sensitive", "viewer_record"]

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Sensitive:
    """One sensitive value let through, or one sensitive act done."""

    enterprise: str
    coordinate: str
    path: Path
    purpose: tuple[str, ...]
    #: For an act (``verify_legal_representative``): its name and outcome.
    action: str = "read"
    outcome: str | None = None


def viewer_record(viewer: Viewer) -> dict[str, Any]:
    """Who, as the trail keeps it. ``subject`` is for the operator's accountability; the
    enterprise's own view shows only the kind, a service client's id and the platform."""
    return {
        "kind": viewer.kind,
        "subject": viewer.subject,
        "platform": getattr(viewer, "platform", None),
    }


class AuditTrail:
    def __init__(self, viewer: Viewer, request_id: str) -> None:
        self.viewer = viewer
        self.request_id = request_id
        self._noted: list[Sensitive] = []

    def _purpose(self, scopes: Collection[str]) -> tuple[str, ...]:
        """Why the viewer may: the scopes of the field's rule it holds, or its role."""
        if isinstance(self.viewer, ServiceClient):
            return tuple(sorted(set(scopes) & self.viewer.scopes))
        if isinstance(self.viewer, Operator):
            return ("operator",)
        return (self.viewer.kind,)

    def read(
        self, enterprise: str | None, coordinate: str, path: Path, scopes: Collection[str]
    ) -> None:
        """A sensitive field was let through at response ``path``."""
        self._noted.append(Sensitive(enterprise or "-", coordinate, path, self._purpose(scopes)))

    def action(
        self,
        enterprise: str,
        action: str,
        outcome: str,
        *,
        coordinate: str,
        path: Path,
        scopes: Collection[str],
    ) -> None:
        """A sensitive act (verifying an ID number) and its outcome, answered at ``path``."""
        self._noted.append(
            Sensitive(enterprise, coordinate, path, self._purpose(scopes), action, outcome)
        )

    def __bool__(self) -> bool:
        return bool(self._noted)

    def clear(self) -> None:
        """Forget what was noted (recorded, or withheld): a subscription's next event
        starts a trail of its own."""
        self._noted = []

    def served(self, data: Any) -> None:
        """Keep only what ``data`` holds: a value that resolved to null (a source down,
        a denial further in) was not served, and is not recorded."""
        self._noted = [noted for noted in self._noted if _held(data, noted.path)]

    @property
    def paths(self) -> list[Path]:
        """Where the sensitive values lie, outermost first, each once."""
        return sorted(set(noted.path for noted in self._noted), key=len)

    def records(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """One record per enterprise read, and one per act; no field values, ever."""
        at = now or dt.datetime.now(dt.UTC)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        common = {"viewer": viewer_record(self.viewer), "request_id": self.request_id, "at": at}
        reads: defaultdict[str, list[Sensitive]] = defaultdict(list)
        acts = []
        for noted in self._noted:
            if noted.action == "read":
                reads[noted.enterprise].append(noted)
            else:
                acts.append(noted)
        records = [
            _record(common, enterprise, "read", found, None)
            for enterprise, found in sorted(reads.items())
        ]
        return records + [
            _record(common, act.enterprise, act.action, [act], act.outcome) for act in acts
        ]


def _record(
    common: dict[str, Any],
    enterprise: str,
    action: str,
    noted: Sequence[Sensitive],
    outcome: str | None,
) -> dict[str, Any]:
    record = {
        "_id": ObjectId(),
        **common,
        "enterprise": enterprise,
        # When the enterprise may see it in its accessLog (a disclosure may defer it).
        "visible_from": common["at"],
        "action": action,
        "fields": sorted({n.coordinate for n in noted}),
        "purpose": sorted({p for n in noted for p in n.purpose}),
    }
    if outcome is not None:
        record["outcome"] = outcome
    return record


def _held(data: Any, path: Path) -> bool:
    node = data
    for key in path:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return False
        elif not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return node is not None
