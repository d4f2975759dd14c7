"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from gateway.audit import AuditTrail
from gateway.cache import DocumentCache
from gateway.limits import Allowance, Limits
from gateway.notifications import NotificationHub
from gateway.settings import Settings
from gateway.sources import Sources
from gateway.viewer import Viewer
from loaders import Loaders

__all__ = ["Context", "Info", "OperationReport"]


@dataclass(slots=True)
class OperationReport:
    """What the operation limits measured, for the response's extensions and headers."""

    cost: int | None = None
    allowance: Allowance | None = None
    #: An anonymous GET whose every field is PUBLIC (so its answer may be cached);
    #: not looked at for any other request.
    public: bool = False
    #: The name of the operation run, as its document gives it (for metrics).
    operation_name: str | None = None


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
    limits: Limits
    #: Signs search cursors.
    cursor_key: bytes
    #: GET or POST: personal data must not arrive in a URL.
    http_method: str = "POST"
    #: The client's address (X-Forwarded-For believed from trusted proxies only):
    #: what anonymous viewers are rate-limited by.
    client_address: str = "-"
    report: OperationReport = field(default_factory=OperationReport)
    #: Visibility decisions made so far in this request, by (rule, enterprise).
    decisions: dict[Any, Any] = field(default_factory=dict)
    #: Live notifications (gateway/notifications.py), for subscriptions.
    notifications: NotificationHub | None = None


Info = strawberry.Info[Context, None]
