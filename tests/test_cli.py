"""The command line: help, argument checks and schema export."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, main
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
    for command in ("serve", "seed", "export-schema"):
        assert command in text
