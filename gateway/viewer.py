"""Who is asking. Every request has exactly one viewer; there is never a ``None`` user.

``authenticate`` (gateway/auth.py) turns a verified token into one of these; a request
without a token is ``Anonymous``. What each may see is decided in resolvers/permissions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

__all__ = ["Anonymous", "Member", "Operator", "Owner", "ServiceClient", "Viewer"]


@dataclass(frozen=True, slots=True)
class Anonymous:
    """No credentials: the public archive only."""

    kind: ClassVar[str] = "anonymous"
    subject: ClassVar[str] = "-"


@dataclass(frozen=True, slots=True)
class Member:
    """A logged-in platform user."""

    kind: ClassVar[str] = "member"
    subject: str
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """A logged-in user acting for one enterprise, named by its USCC in the token."""

    kind: ClassVar[str] = "owner"
    subject: str
    enterprise: str
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A platform back end or delegated partner, holding OAuth-style scopes."""

    kind: ClassVar[str] = "service"
    subject: str
    platform: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Operator:
    """Internal staff."""

    kind: ClassVar[str] = "operator"
    subject: str


Viewer = Anonymous | Member | Owner | ServiceClient | Operator
