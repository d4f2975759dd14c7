"""The one place the environment is read.

Every knob of the gateway is a field here, typed and validated at start-up, so a
misconfiguration fails before the first request instead of on it.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A schema coordinate: Type.field.
_COORDINATE = re.compile(r"[A-Z][A-Za-z0-9]*\.[a-z][A-Za-z0-9]*")
#: The values a token's ``platform`` claim takes.
PLATFORM_CLAIMS = ("1688", "taobao", "tmall", "alibaba_com")

#: A web origin: scheme, host and optional port, nothing after.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")

__all__ = ["PLATFORM_CLAIMS", "ConfigurationError", "Settings", "Source"]


class ConfigurationError(ValueError):
    """Settings that cannot run together; raised at start-up, before any request."""


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
    startup_timeout_ms: int = Field(
        default=120_000,
        ge=1_000,
        le=3_600_000,
        description=(
            "How long start-up work (the seed check, index builds) may wait for a source "
            "that answers; one that is down is still given up after MONGODB_TIMEOUT_MS."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the document cache; unset starts the embedded server.",
    )
    redis_cluster: bool = Field(
        default=False,
        description=(
            "REDIS_URL names one node of a Redis Cluster: the gateway discovers the others, "
            "and documents, rate limits and notifications are spread over its slots."
        ),
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
    gateway_log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or one JSON object per line; each with its request id.",
    )
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

    # --- Operation limits: checked before anything executes (README "Limits"). ---
    limit_body_bytes: int = Field(
        default=65_536, ge=1_024, le=16_777_216, description="Largest request body, bytes."
    )
    limit_header_bytes: int = Field(
        default=16_384, ge=1_024, le=1_048_576, description="Largest request header block, bytes."
    )
    limit_variables_depth: int = Field(
        default=8, ge=1, le=64, description="Deepest nesting of the JSON variables."
    )
    limit_tokens: int = Field(
        default=2_000, ge=100, le=100_000, description="Most lexical tokens in a document."
    )
    limit_depth: int = Field(default=12, ge=2, le=64, description="Deepest field nesting.")
    limit_aliases: int = Field(default=30, ge=0, le=10_000, description="Most aliases.")
    limit_root_fields: int = Field(
        default=10, ge=1, le=1_000, description="Most fields at the operation's root."
    )
    limit_directives: int = Field(default=20, ge=0, le=1_000, description="Most directives.")
    limit_fields: int = Field(
        default=120,
        ge=1,
        le=100_000,
        description="Most field selections, fragments expanded (validation is quadratic in them).",
    )
    limit_operations: int = Field(
        default=10, ge=1, le=100, description="Most operations in one document."
    )
    cost_limit_anonymous: int = Field(
        default=1_200, ge=1, description="Largest cost of one operation, anonymous viewer."
    )
    cost_limit_member: int = Field(
        default=10_000, ge=1, description="Largest cost of one operation, member or owner."
    )
    cost_limit_service: int = Field(
        default=30_000, ge=1, description="Largest cost of one operation, service client."
    )
    cost_limit_operator: int = Field(
        default=30_000, ge=1, description="Largest cost of one operation, operator."
    )

    # --- Rate limits, in cost units per window (limits notation, ';' between windows). ---
    rate_limit_anonymous: str = Field(
        default="1200/minute;4000/hour",
        description="Cost units per anonymous client (by IP) and window.",
    )
    rate_limit_member: str = Field(
        default="30000/minute;300000/hour",
        description="Cost units per member, owner or operator (by subject) and window.",
    )
    rate_limit_service: str = Field(
        default="300000/minute",
        description="Cost units per service client (by client id) and window.",
    )
    rate_limit_service_clients: dict[str, str] = Field(
        default_factory=dict,
        description="Per-client overrides of RATE_LIMIT_SERVICE, a JSON object: id -> limit.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or networks (CIDR) of the proxies whose X-Forwarded-For is believed; "
            "a JSON list. Empty: the peer address is the client."
        ),
    )

    # --- Browser pages on other origins (CORS). ---
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Origins (scheme://host[:port]) whose pages may call the gateway from a browser, "
            'a JSON list; ["*"] for any. Empty: CORS is off (no Access-Control-* headers, '
            "preflights refused)."
        ),
    )
    cors_allow_credentials: bool = Field(
        default=False,
        description="Whether those pages may send cookies and HTTP authentication (never with *).",
    )
    cors_max_age_seconds: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description="How long a browser may reuse a preflight's answer, seconds.",
    )

    # --- Traces (OpenTelemetry). ---
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description=(
            "OTLP/HTTP endpoint (e.g. http://otel-collector:4318) to send traces to; "
            "unset: no traces are made at all."
        ),
    )
    otel_service_name: str = Field(
        default="integrity-gateway", description="The service.name traces carry."
    )

    # --- Metrics. ---
    metrics_allowed_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description=(
            "Addresses or networks (CIDR) that may read /metrics, a JSON list; others get "
            "404. Empty: /metrics is off."
        ),
    )

    # --- Persisted operations and HTTP caching. ---
    persisted_query_ttl_seconds: int = Field(
        default=86_400,
        ge=60,
        le=30 * 86_400,
        description="How long Redis keeps a document registered by automatic persisted queries.",
    )
    trusted_documents_file: Path | None = Field(
        default=None,
        description=(
            "JSON of registered operations (sha256 -> document, or an Apollo persisted query "
            "manifest). When set, anonymous viewers may run these operations only."
        ),
    )
    cache_max_age_seconds: int = Field(
        default=60,
        ge=0,
        le=86_400,
        description="max-age of a GET answer to an anonymous viewer with PUBLIC fields only.",
    )

    # --- Bounded work. ---
    request_deadline_ms: int = Field(
        default=3_000,
        ge=100,
        le=120_000,
        description="A request's budget: fields not resolved by then are null with TIMEOUT.",
    )
    max_in_flight: int = Field(
        default=128,
        ge=1,
        le=100_000,
        description="GraphQL requests one worker runs at once; beyond, 503 at once.",
    )
    cache_miss_ttl_seconds: int = Field(
        default=30,
        ge=1,
        le=86_400,
        description="How long Redis remembers that a key has no document (shorter than hits).",
    )
    redis_pool_size: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description=(
            "Redis connections per worker for writes (reads share one, pipelined; on a "
            "cluster, the commands in flight)."
        ),
    )
    redis_pool_timeout_ms: int = Field(
        default=1_000,
        ge=1,
        le=60_000,
        description="How long a write waits for a free Redis connection before it fails.",
    )

    # --- Writes and freshness (DESIGN §6). ---
    watcher_enabled: bool = Field(
        default=True,
        description=(
            "Run the change-stream watcher inside the gateway (it evicts what other systems "
            "change). Turn off in replicas when one `integrity-gateway watch` serves them all."
        ),
    )
    cache_eviction_grace_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3_600,
        description=(
            "How long an evicted key refuses write-backs (a request that read the old "
            "document before the change). Longer than a request's deadline; by default "
            "the deadline plus 5 s, at least 30 s."
        ),
    )
    notification_retention_days: int = Field(
        default=365, ge=1, le=3_650, description="How long an enterprise's notifications are kept."
    )
    mutation_replay_hours: int = Field(
        default=24,
        ge=1,
        le=720,
        description="How long a client mutation id is remembered (a retry gets the first answer).",
    )

    # --- Personal data (DESIGN §1: the NEVER tier and the audit rule). ---
    pii_encryption_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Keys that seal ID numbers at rest: kid:base64key[,kid:base64key...], 32-byte "
            "keys, the first one seals. Required in production; dev mode makes one under "
            "GATEWAY_DATA_DIR/pii-keys."
        ),
    )
    audit_mongodb_url: str | None = Field(
        default=None,
        description="MongoDB URL of the audit trail's store; unset: the registry's cluster.",
    )
    audit_retention_days: int = Field(
        default=1_095,
        ge=30,
        le=3_650,
        description="How long the audit trail (and so an enterprise's accessLog) is kept.",
    )
    audit_timeout_ms: int = Field(
        default=1_000,
        ge=50,
        le=60_000,
        description=(
            "How long a response waits for its sensitive reads' audit record to be written "
            "before it withholds those fields (AUDIT_UNAVAILABLE)."
        ),
    )
    upkeep_interval_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3_600,
        description=(
            "How often each replica moves spooled audit records into the trail and sends "
            "disclosure notices that came due; 0 turns it off (then run none of either)."
        ),
    )
    platform_hidden_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Per platform (1688, taobao, tmall, alibaba_com), the fields its viewers may not "
            'see, as Type.field, a JSON object: {"taobao": ["Enterprise.registeredCapital"]}. '
            "Applies to every token whose platform claim names that platform."
        ),
    )

    @model_validator(mode="after")
    def _grace_outlasts_requests(self) -> Settings:
        grace = self.cache_eviction_grace_seconds
        if grace is not None and grace * 1000 <= self.request_deadline_ms:
            raise ValueError(
                "CACHE_EVICTION_GRACE_SECONDS must be longer than REQUEST_DEADLINE_MS, or a "
                "request that read a document before it changed could cache the old one"
            )
        return self

    @field_validator("gateway_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("rate_limit_anonymous", "rate_limit_member", "rate_limit_service")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("rate_limit_service_clients")
    @classmethod
    def _client_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for limit in value.values():
            parse_many(limit)
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        if value == ["*"]:
            return value
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f'{origin!r} is not an origin: scheme://host[:port], no path, or ["*"] alone'
                )
        return value

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> Settings:
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("REDIS_CLUSTER needs REDIS_URL: a node of the cluster")
        return self

    @model_validator(mode="after")
    def _credentials_need_origins(self) -> Settings:
        if self.cors_allow_credentials and self.cors_allowed_origins == ["*"]:
            raise ValueError("CORS_ALLOW_CREDENTIALS needs the origins named, not *")
        return self

    @field_validator("pii_encryption_keys")
    @classmethod
    def _pii_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            from gateway.pii import Keyring  # it reads these settings: imported late

            Keyring.parse(value.get_secret_value())
        return value

    @field_validator("platform_hidden_fields")
    @classmethod
    def _platforms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for platform, fields in value.items():
            if platform not in PLATFORM_CLAIMS:
                raise ValueError(
                    f"{platform!r} is not a platform: one of {', '.join(PLATFORM_CLAIMS)}"
                )
            for coordinate in fields:
                if not _COORDINATE.fullmatch(coordinate):
                    raise ValueError(f"{coordinate!r} is not Type.field")
        return value

    @field_validator("trusted_proxies", "metrics_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    def require_trusted_keys(self) -> None:
        """Serving in production needs a key to trust: a clear start-up error otherwise
        (rather than a gateway that refuses every token)."""
        if not self.gateway_dev_mode and self.auth_jwks_file is None and not self.auth_jwks_url:
            raise ConfigurationError(
                "GATEWAY_DEV_MODE is off and no trusted signing key is configured: "
                "set AUTH_JWKS_FILE or AUTH_JWKS_URL (or turn dev mode on for development)"
            )

    def mongodb_url_for(self, source: Source) -> str | None:
        """The URL configured for one source: its own override, else the shared one."""
        override: str | None = getattr(self, f"mongodb_url_{source.value}")
        return override or self.mongodb_url

    @property
    def eviction_grace_seconds(self) -> int:
        """CACHE_EVICTION_GRACE_SECONDS, or derived from the request deadline."""
        if self.cache_eviction_grace_seconds is not None:
            return self.cache_eviction_grace_seconds
        return max(30, math.ceil(self.request_deadline_ms / 1000) + 5)

    @property
    def dev_keys_dir(self) -> Path:
        return self.gateway_data_dir / "dev-keys"

    @property
    def needs_embedded_mongodb(self) -> bool:
        return any(self.mongodb_url_for(source) is None for source in Source)
