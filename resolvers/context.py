"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from gateway.audit import AuditTrail
from gateway.cache import DocumentCache
from gateway.limits import RateLimits
from gateway.settings import Settings
from gateway.sources import Sources
from gateway.viewer import Viewer
from loaders import Loaders

__all__ = ["Context", "Info"]


@dataclass(frozen=True, slots=True)
class Context:
    viewer: Viewer
    loaders: Loaders
    settings: Settings
    request_id: str
    audit: AuditTrail
    #: For the few reads that must not be batched or cached (verification).
    sources: Sources
    cache: DocumentCache
    limits: RateLimits
    #: Signs search cursors.
    cursor_key: bytes
    #: GET or POST: personal data must not arrive in a URL.
    http_method: str = "POST"
    #: Visibility decisions made so far in this request, by (rule, enterprise).
    decisions: dict[Any, Any] = field(default_factory=dict)


Info = strawberry.Info[Context, None]
