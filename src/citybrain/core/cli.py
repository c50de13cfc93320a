"""The `citybrain` command line: demo, serve, db, apps, audit, and the commands apps add."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from citybrain.core.apps import AppError
from citybrain.core.context import AppContext
from citybrain.core.settings import Settings, SettingsError, load_settings


def _settings(**overrides: Any) -> Settings:
    """Load settings or exit with the message naming the bad variable."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _context(settings: Settings) -> AppContext:
    """Build the platform context or exit with the app error."""
    from citybrain.core.platform import build_context

    try:
        return build_context(settings)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc


def with_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command to receive a ready AppContext (settings from the environment)."""

    @click.pass_context
    def wrapper(click_ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        ctx = _context(_settings())
        try:
            return func(ctx, *args, **kwargs)
        finally:
            ctx.db.dispose()

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@click.group()
@click.version_option(package_name="citybrain")
def cli() -> None:
    """CityBrain (城市智脑): the city operating platform."""


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, help="Where the demo keeps its data."
)
def demo(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Create or update the embedded demo database, seed Mianyang, and serve it."""
    settings = _settings(host=host, port=port, data_dir=data_dir, mode="development", demo=True)
    ctx = _context(settings)
    from citybrain.core.migrate import upgrade

    click.echo(f"CityBrain 城市智脑 — preparing the demo database at {settings.db_url}")
    upgrade(ctx)
    lines: list[str] = []
    for spec in ctx.apps:
        module = spec.module("demo")
        if module is not None and hasattr(module, "seed"):
            lines += module.seed(ctx) or []
    ctx.db.dispose()
    click.echo("")
    click.secho(f"  Open http://{settings.host}:{settings.port}/ in your browser.", fg="green", bold=True)
    for line in lines:
        click.echo(f"  {line}")
    click.echo("  Press Ctrl-C to stop.\n")
    _serve(settings)


@cli.command()
@click.option("--host", default=None, help="Address to listen on.")
@click.option("--port", type=int, default=None, help="Port to listen on.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log a line per request (a reverse proxy in front may log them already).",
)
def serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    """Serve the platform with the settings from the environment (run `db upgrade` first)."""
    settings = _settings(host=host, port=port)
    _context(settings).db.dispose()
    _serve(settings, workers, access_log)


def _log_to_console() -> None:
    """Show the platform's own INFO messages (workers connecting, retention runs) beside uvicorn's."""
    logger = logging.getLogger("citybrain")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _serve(settings: Settings, workers: int = 1, access_log: bool = True) -> None:
    """Run uvicorn; its "auto" loop and HTTP parser are uvloop and httptools (dependencies) where available."""
    import uvicorn

    from citybrain.core.asgi import create_app

    _log_to_console()

    if workers > 1:
        click.echo("several workers: set CITYBRAIN_* in the environment; each worker builds its own app")
        uvicorn.run(
            "citybrain.core.asgi:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
            access_log=access_log,
        )
        return
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=access_log
    )


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@with_context
def db_upgrade(ctx: AppContext) -> None:
    """Apply every pending migration of the kernel and the enabled apps."""
    from citybrain.core.migrate import upgrade

    upgrade(ctx)
    click.echo("database is up to date")


@db.command("revision")
@click.option("--app", "label", required=True, help="Branch: `core` or an app label.")
@click.option("-m", "--message", required=True, help="What the revision does.")
@with_context
def db_revision(ctx: AppContext, label: str, message: str) -> None:
    """Generate a migration for one app's branch from its models (for app developers)."""
    from citybrain.core.migrate import revision, upgrade

    upgrade(ctx)
    revision(ctx, label, message)


@cli.group()
def apps() -> None:
    """Installed apps."""


@apps.command("list")
@with_context
def apps_list(ctx: AppContext) -> None:
    """List the enabled apps in dependency order."""
    for spec in ctx.apps:
        requires = ", ".join(spec.requires) or "-"
        click.echo(f"{spec.label:<14} {spec.layer:<12} requires: {requires:<20} {spec.title}")


@cli.group()
def audit() -> None:
    """The audit ledger."""


@audit.command("verify")
@with_context
def audit_verify(ctx: AppContext) -> None:
    """Walk the hash chain; exit 1 naming the first edited, deleted or reordered record."""
    from citybrain.core import ledger

    with ctx.read() as session:
        verdict = ledger.verify(session)
    if verdict.ok:
        click.secho(str(verdict), fg="green")
        return
    click.secho(str(verdict), fg="red", err=True)
    sys.exit(1)


def _add_app_commands() -> None:
    """Attach the command groups apps declare in their `cli.py` (`COMMANDS`)."""
    from citybrain.core.apps import discover

    try:
        specs = discover()
    except AppError:
        return
    for spec in specs:
        module = spec.module("cli")
        for command in getattr(module, "COMMANDS", ()) if module else ():
            cli.add_command(command)


def main() -> None:
    """Entry point of the `citybrain` console script."""
    _add_app_commands()
    cli()
