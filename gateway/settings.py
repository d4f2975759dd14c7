"""The one place the environment is read.

Every knob of the gateway is a field here, typed and validated at start-up, so a
misconfiguration fails before the first request instead of on it.
"""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "Source"]


class Source(enum.StrEnum):
    """The MongoDB databases the archive is assembled from (DESIGN §2).

    The value is the database name and the suffix of its ``MONGODB_URL_<SOURCE>``
    override.
    """

    REGISTRY = "registry"
    IDENTITY = "identity"
    INTEGRITY = "integrity"
    PLATFORM_1688 = "platform_1688"
    PLATFORM_TAOBAO = "platform_taobao"
    PLATFORM_TMALL = "platform_tmall"
    PLATFORM_ALIBABA_COM = "platform_alibaba_com"


class Settings(BaseSettings):
    """Gateway settings, read from environment variables (names are case-insensitive)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    mongodb_url: str | None = Field(
        default=None,
        description="MongoDB URL for every source; unset starts the embedded server.",
    )
    mongodb_url_registry: str | None = None
    mongodb_url_identity: str | None = None
    mongodb_url_integrity: str | None = None
    mongodb_url_platform_1688: str | None = None
    mongodb_url_platform_taobao: str | None = None
    mongodb_url_platform_tmall: str | None = None
    mongodb_url_platform_alibaba_com: str | None = None
    mongodb_timeout_ms: int = Field(
        default=2000,
        ge=50,
        le=60_000,
        description="Server selection, connect and socket timeout for each source, ms.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the document cache; unset starts the embedded server.",
    )
    cache_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65_535)
    gateway_data_dir: Path = Path("var")
    gateway_seed_enterprises: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="Enterprises seeded when `serve` finds an empty registry; 0 disables.",
    )
    gateway_log_level: str = "INFO"
    gateway_dev_mode: bool = Field(
        default=True,
        description=(
            "Trust the development signing key under GATEWAY_DATA_DIR/dev-keys (created on "
            "first use) besides the configured JWKS. Turn off in production."
        ),
    )
    auth_jwks_file: Path | None = Field(default=None, description="JWKS file of trusted keys.")
    auth_jwks_url: str | None = Field(default=None, description="JWKS URL of trusted keys.")
    auth_issuer: str = Field(default="integrity-gateway-dev", description="Required `iss`.")
    auth_audience: str = Field(default="integrity-gateway", description="Required `aud`.")
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    cursor_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key that signs search cursors (so a page depth cannot be forged). Unset: a "
            "random key per process, so cursors do not survive a restart or cross replicas."
        ),
    )
    verify_rate_limit: str = Field(
        default="30/minute",
        description="verifyLegalRepresentative calls allowed per service client (limits syntax).",
    )

    @field_validator("gateway_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    def mongodb_url_for(self, source: Source) -> str | None:
        """The URL configured for one source: its own override, else the shared one."""
        override: str | None = getattr(self, f"mongodb_url_{source.value}")
        return override or self.mongodb_url

    @property
    def dev_keys_dir(self) -> Path:
        return self.gateway_data_dir / "dev-keys"

    @property
    def needs_embedded_mongodb(self) -> bool:
        return any(self.mongodb_url_for(source) is None for source in Source)
