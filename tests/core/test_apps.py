"""App manifests: discovery, dependency order and clear errors for a broken set of apps."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from citybrain.core.apps import AppError, AppSpec, discover, resolve
from citybrain.core.cli import cli


def spec(label: str, *requires: str) -> AppSpec:
    return AppSpec(
        label=label,
        title=label,
        description="",
        layer="application",
        requires=requires,
        package=f"pkg.{label}",
    )


def test_dependencies_come_first() -> None:
    ordered = resolve([spec("command", "warning", "identity"), spec("warning", "identity"), spec("identity")])
    labels = [s.label for s in ordered]
    assert labels.index("identity") < labels.index("warning") < labels.index("command")


def test_missing_dependency_is_named() -> None:
    with pytest.raises(AppError, match="'warning' requires 'context'"):
        resolve([spec("warning", "context")])


def test_cycle_is_shown() -> None:
    with pytest.raises(AppError, match="cycle: aa -> bb -> cc -> aa"):
        resolve([spec("aa", "bb"), spec("bb", "cc"), spec("cc", "aa")])


def test_duplicate_label_names_both_packages() -> None:
    first, second = (
        spec("traffic"),
        AppSpec(label="traffic", title="t", description="", layer="application", package="other.traffic"),
    )
    with pytest.raises(AppError, match=r"duplicate app label 'traffic'.*pkg\.traffic.*other\.traffic"):
        resolve([first, second])


def test_selection_picks_a_subset_and_checks_it() -> None:
    specs = [spec("identity"), spec("context", "identity"), spec("traffic", "context")]
    assert [s.label for s in resolve(specs, ("identity", "context"))] == ["identity", "context"]
    with pytest.raises(AppError, match="'traffic' requires 'context'"):
        resolve(specs, ("identity", "traffic"))
    with pytest.raises(AppError, match=r"unknown app.*nosuch"):
        resolve(specs, ("identity", "nosuch"))


def test_bad_label_and_self_dependency_are_refused() -> None:
    with pytest.raises(AppError):
        spec("Bad-Label")
    with pytest.raises(AppError, match="requires itself"):
        spec("loop", "loop")


def test_builtin_apps_are_discovered_through_entry_points() -> None:
    found = {s.label: s for s in discover()}
    assert "identity" in found
    assert found["identity"].package == "citybrain.apps.identity"
    assert found["identity"].module("api") is not None
    assert found["identity"].module("no_such_feature") is None


def test_cli_lists_apps_and_reports_a_bad_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(cli, ["apps", "list"])
    assert listed.exit_code == 0 and "identity" in listed.output
    bad = CliRunner().invoke(cli, ["apps", "list"], env={"CITYBRAIN_APPS": "identity,nosuch"})
    assert bad.exit_code != 0 and "nosuch" in bad.output
