"""Who is asking. Every request has a viewer; there is never a ``None`` user.

Only ``Anonymous`` exists until token authentication lands; the field-visibility
check (resolvers/permissions.py) is written against this type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["Anonymous", "Viewer"]


@dataclass(frozen=True, slots=True)
class Anonymous:
    """A request without credentials: sees the public archive only."""

    kind: ClassVar[str] = "anonymous"


Viewer = Anonymous
