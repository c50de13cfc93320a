"""Settings: typed, from the environment and .env, refusing placeholders outside development."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from citybrain.core.cli import cli
from citybrain.core.settings import PLACEHOLDER_SECRET, SettingsError, load_app_settings, load_settings
from citybrain.sdk import AppSettings


def test_defaults_are_embedded_development(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.mode == "development"
    assert settings.is_sqlite and settings.db_url.endswith("var/citybrain.db")
    assert settings.bus_url == "memory://"
    assert settings.default_locale == "zh_CN"
    assert settings.timezone == "Asia/Shanghai"


def test_production_refuses_the_placeholder_secret_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="CITYBRAIN_SECRET_KEY"):
        load_settings(mode="production", secret_key=PLACEHOLDER_SECRET)
    with pytest.raises(SettingsError, match="CITYBRAIN_SECRET_KEY"):
        load_settings(mode="production", secret_key="short")
    ok = load_settings(mode="production", secret_key="x" * 40)
    assert ok.secret_key.get_secret_value() == "x" * 40


def test_malformed_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBRAIN_PORT", "eighty")
    with pytest.raises(SettingsError, match="CITYBRAIN_PORT"):
        load_settings()
    monkeypatch.setenv("CITYBRAIN_PORT", "8080")
    monkeypatch.setenv("CITYBRAIN_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="CITYBRAIN_TIMEZONE"):
        load_settings()


def test_apps_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBRAIN_APPS", " identity , context ")
    assert load_settings().apps == ("identity", "context")


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CITYBRAIN_BUS_URL=nats://127.0.0.1:4222\nCITYBRAIN_PORT=9001\n")
    settings = load_settings()
    assert settings.bus_url == "nats://127.0.0.1:4222"
    assert settings.port == 9001


def test_app_settings_use_the_label_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class DemoSettings(AppSettings):
        batch_size: int = 10

    monkeypatch.setenv("CITYBRAIN_IOT_BATCH_SIZE", "250")
    assert load_app_settings(DemoSettings, "iot").batch_size == 250
    monkeypatch.setenv("CITYBRAIN_IOT_BATCH_SIZE", "lots")
    with pytest.raises(SettingsError, match="CITYBRAIN_IOT_BATCH_SIZE"):
        load_app_settings(DemoSettings, "iot")


def test_cli_stops_on_a_malformed_setting_with_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["apps", "list"], env={"CITYBRAIN_SESSION_HOURS": "-3"})
    assert result.exit_code != 0
    assert "CITYBRAIN_SESSION_HOURS" in result.output
