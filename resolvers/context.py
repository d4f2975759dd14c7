"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry

from gateway.settings import Settings
from gateway.viewer import Viewer
from loaders import Loaders

__all__ = ["Context", "Info"]


@dataclass(frozen=True, slots=True)
class Context:
    viewer: Viewer
    loaders: Loaders
    settings: Settings
    request_id: str


Info = strawberry.Info[Context, None]
