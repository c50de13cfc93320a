"""The command line as a user runs it: `citybrain demo` serves, stops on Ctrl-C, and reruns cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from citybrain.apps.identity.models import Department, User


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(data_dir: Path) -> tuple[str, int]:
    """Start `citybrain demo`, wait until it answers, press Ctrl-C; return its output and exit code."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain", "demo", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=data_dir.parent,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the demo did not start")
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    return out, proc.returncode


@pytest.mark.embedded
def test_demo_serves_prints_credentials_stops_cleanly_and_does_not_duplicate(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    first, code = run_demo(data)
    assert code == 0, first
    assert "http://127.0.0.1:" in first
    password_line = next(line for line in first.splitlines() if "username admin" in line)
    password = password_line.rsplit(" ", 1)[-1]
    assert len(password) >= 10
    engine = create_engine(f"sqlite:///{data / 'citybrain.db'}")
    with engine.connect() as conn:
        counts = (
            conn.scalar(select(func.count()).select_from(Department)),
            conn.scalar(select(func.count()).select_from(User)),
        )
    assert counts[0] >= 20 and counts[1] >= 1
    second, code = run_demo(data)
    assert code == 0, second
    assert password in second
    with engine.connect() as conn:
        again = (
            conn.scalar(select(func.count()).select_from(Department)),
            conn.scalar(select(func.count()).select_from(User)),
        )
    engine.dispose()
    assert again == counts
    verify = subprocess.run(
        [sys.executable, "-m", "citybrain", "audit", "verify"],
        capture_output=True,
        text=True,
        env={**os.environ, "CITYBRAIN_DATA_DIR": str(data)},
    )
    assert verify.returncode == 0 and "intact" in verify.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_serve_runs_on_uvloop_and_httptools_with_an_optional_access_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    import uvloop
    from click.testing import CliRunner
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from citybrain.core.cli import cli

    served: dict[str, object] = {}

    def run(app: object, **options: object) -> None:
        served.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    env = {"CITYBRAIN_DATA_DIR": str(tmp_path), "CITYBRAIN_DATABASE_URL": ""}
    result = CliRunner().invoke(cli, ["serve", "--port", str(free_port())], env=env)
    assert result.exit_code == 0, result.output
    assert served["access_log"] is True
    config = uvicorn.Config(served.pop("app"), **served)  # type: ignore[arg-type]
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    quiet = CliRunner().invoke(cli, ["serve", "--port", str(free_port()), "--no-access-log"], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert served["access_log"] is False
