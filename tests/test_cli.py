"""The command line: help, argument checks and schema export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.auth import Authenticator
from gateway.cli import build_parser, main
from gateway.devkeys import dev_jwks
from gateway.embedded import EmbeddedError, EmbeddedMongo, free_port
from gateway.settings import Settings
from gateway.viewer import ServiceClient
from resolvers.schema import schema


def test_export_schema_writes_the_sdl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema.as_str() + "\n"
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == schema.as_str() + "\n"


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_seed_needs_a_positive_count(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["seed", "--enterprises", value])
    assert raised.value.code == 2
    assert "--enterprises" in capsys.readouterr().err


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in (
        "serve",
        "seed",
        "reindex-search",
        "watch",
        "rotate-keys",
        "demo-identity",
        "token",
        "export-schema",
        "export-contracts",
        "ensure-validators",
    ):
        assert command in text


def _settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A data directory where `serve` has made its development key."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    settings = Settings()
    dev_jwks(settings.dev_keys_dir)
    return settings


async def test_token_mints_a_token_the_gateway_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings_for(tmp_path, monkeypatch)
    args = ["token", "--role", "service", "--scope", "risk:read", "--scope", "identity:read"]
    assert main([*args, "--platform", "tmall", "--subject", "partner-1", "--ttl", "30m"]) == 0
    token = capsys.readouterr().out.strip()
    viewer = await Authenticator.from_settings(settings).authenticate(f"Bearer {token}")
    assert viewer == ServiceClient(
        subject="partner-1", platform="tmall", scopes=frozenset({"risk:read", "identity:read"})
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "owner"], "token: --enterprise is required for, and only for, the owner role"),
        (
            ["--role", "member", "--enterprise", "91330110MAJPDCW44H"],
            "token: --enterprise is required for, and only for, the owner role",
        ),
        (
            ["--role", "member", "--scope", "risk:read"],
            "token: --scope is only for the service role",
        ),
        (
            ["--role", "owner", "--enterprise", "91330110MAJPDCW44G"],
            "token: USCC position 18 fails the GB 32100 MOD 31 check",
        ),
    ],
)
def test_token_refuses_claims_that_do_not_fit_the_role(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    _settings_for(tmp_path, monkeypatch)
    assert main(["token", *args]) == 2
    assert capsys.readouterr().err.strip() == message


def test_token_makes_no_key_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from another directory, it would sign with a key no gateway trusts."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert main(["token", "--role", "member"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"token: no development key in {settings.dev_keys_dir.resolve()}: start "
        "`integrity-gateway serve` first (it makes one there), or set GATEWAY_DATA_DIR to "
        "the data directory of the gateway you call"
    )
    assert not settings.dev_keys_dir.exists()


def test_token_refuses_outside_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings_for(tmp_path, monkeypatch)
    monkeypatch.setenv("GATEWAY_DEV_MODE", "false")
    assert main(["token", "--role", "member"]) == 2
    assert capsys.readouterr().err.strip() == (
        "token: dev tokens are trusted only in dev mode (GATEWAY_DEV_MODE=true)"
    )


def test_a_store_held_by_another_process_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`seed` while `serve` holds the embedded store: its reason, not a traceback."""
    held = "embedded mongodb exited with code 1; see var/mongodb/mongodb.log (is another ...?)"

    def refuse(self: EmbeddedMongo) -> None:
        raise EmbeddedError(held)

    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.setattr(EmbeddedMongo, "start", refuse)
    assert main(["seed", "--enterprises", "1"]) == 2
    assert capsys.readouterr().err == f"seed: {held}\n"


def test_serve_says_in_one_line_that_its_store_is_held(tmp_path: Path) -> None:
    """`serve` beside another process holding its embedded store: the reason, not
    uvicorn's traceback of the failed start-up."""
    with EmbeddedMongo(tmp_path / "mongodb"):
        ran = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
            env={**os.environ, "GATEWAY_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ran.returncode == 3  # uvicorn's "start-up failed"
    assert "Traceback" not in ran.stderr
    failed = [line for line in ran.stderr.splitlines() if "ERROR" in line]
    assert failed[0].endswith(
        f"serve: embedded mongodb exited with code 1; see {tmp_path}/mongodb/mongodb.log "
        f"(is another gateway using {tmp_path}/mongodb?)"
    )
    assert failed[1].endswith("Application startup failed. Exiting.")
