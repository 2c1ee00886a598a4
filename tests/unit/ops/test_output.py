"""``--output table|json|yaml`` on the read commands, and colour only on a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from eventing.app.cli import main
from eventing.app.output import colour_enabled, paint

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "quickstart"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("flags", [["-o", "json"], ["--json"], ["--output", "yaml"]])
def test_validate_and_cesql_print_documents(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    load = json.loads if "yaml" not in flags else yaml.safe_load
    assert main(["validate", str(EXAMPLE), *flags]) == 0
    assert load(capsys.readouterr().out)["resources"]["Trigger"] == 2
    assert main(["cesql", "INT(n) > 1", "--attr", "n=5", *flags]) == 0
    assert load(capsys.readouterr().out) == {"value": True, "error": None}
    assert main(["explain", "-f", str(EXAMPLE), "--attr", "type=x", *flags]) == 1
    assert load(capsys.readouterr().out)["deliveredTo"] == []


def test_simulate_prints_yaml_too(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--trace", "steady", "--duration", "30", "--policy", "ours", "-o", "yaml"]
    assert main(argv) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert [(r["trace"], r["policy"]) for r in doc["results"]] == [("steady", "ours")]


def test_tables_have_no_colour_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["explain", "-f", str(EXAMPLE), "--attr", "type=com.example.order.created"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "MATCH    default/new-orders -> workload:default/order-processor" in out


def test_colour_follows_the_terminal_and_the_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_enabled(Tty())
    assert not colour_enabled(io.StringIO())
    assert paint("x", "red", enabled=True) == "\x1b[31mx\x1b[0m"
    assert paint("x", "red", enabled=False) == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert colour_enabled(io.StringIO())
