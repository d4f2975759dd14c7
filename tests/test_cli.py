"""The command line: help, argument checks and schema export."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import Authenticator
from gateway.cli import build_parser, main
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
    for command in ("serve", "seed", "reindex-search", "watch", "token", "export-schema"):
        assert command in text


def _settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    return Settings()


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


def test_token_refuses_outside_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings_for(tmp_path, monkeypatch)
    monkeypatch.setenv("GATEWAY_DEV_MODE", "false")
    assert main(["token", "--role", "member"]) == 2
    assert capsys.readouterr().err.strip() == (
        "token: dev tokens are trusted only in dev mode (GATEWAY_DEV_MODE=true)"
    )
