"""IoT commands: `citybrain simulate` drives the demo city's sensors through a broker or in-process."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import click

from citybrain.apps.iot import city, demo, services
from citybrain.apps.iot.simulator import (
    InternalSink,
    MqttSink,
    Simulator,
    check_broker_url,
    default_timeline,
    mqtt_client,
)
from citybrain.sdk import AppContext, ProblemError, utcnow, with_context


@click.command()
@click.option(
    "--mqtt",
    "mqtt_url",
    default=None,
    metavar="URL",
    help="Publish to this broker, e.g. mqtt://127.0.0.1:1883 (without it: store in-process).",
)
@click.option(
    "--devices",
    "count",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="How many devices (default: the hand-placed ones; more are spread over the districts).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.01, 600),
    default=demo.RATE,
    show_default=True,
    help="Readings per device and minute.",
)
@click.option("--tenant", default="", help="NGSI-LD tenant (default: the default tenant).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to run (default: until Ctrl-C).",
)
@click.option(
    "--seed", "seed_value", type=int, default=demo.SEED, show_default=True, help="Seed of the series."
)
@click.option(
    "--incidents/--no-incidents", default=True, show_default=True, help="Play the scripted incidents."
)
@click.option(
    "--backfill",
    "backfill_hours",
    type=click.FloatRange(0, 24 * 31),
    default=0.0,
    show_default=True,
    help="Hours of history to store first.",
)
@with_context
def simulate(
    ctx: AppContext,
    mqtt_url: str | None,
    count: int | None,
    rate: float,
    tenant: str,
    duration: float | None,
    seed_value: int,
    incidents: bool,
    backfill_hours: float,
) -> None:
    """Drive the demo city's sensors: through an MQTT broker, or in-process into the configured database."""
    if mqtt_url is not None:
        try:
            check_broker_url(mqtt_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--mqtt") from exc
    try:
        tenant = services.check_tenant(tenant)
        demo.ensure_models(ctx)
        devices = city.city_devices(ctx, count, seed_value)
        click.echo(f"{len(devices)} devices; registering those not registered yet…")
        created = demo.ensure_devices(
            ctx, devices, tenant, progress=lambda n: click.echo(f"  {n} registered", err=True)
        )
        click.echo(f"{created} registered now.")
        if backfill_hours:
            stored = demo.backfill(ctx, devices, backfill_hours, seed_value, tenant)
            click.echo(f"{stored} history values stored.")
        keys = demo.usable_keys(ctx, devices, tenant) if mqtt_url else {}
    except ProblemError as exc:
        raise click.ClickException(
            f"{exc} (does `citybrain demo` or `citybrain db upgrade` need to run first?)"
        ) from exc
    start = utcnow()
    timeline = default_timeline(start, devices) if incidents else None
    simulator = Simulator(devices, seed=seed_value, rate=rate, timeline=timeline, keys=keys)
    until = None if duration is None else time.time() + duration
    where = f"the broker {mqtt_url}" if mqtt_url else "the database"
    click.echo(f"Reporting {rate:g} readings per device and minute to {where}; Ctrl-C stops.")
    for line in timeline.describe() if timeline else []:
        click.echo(f"  {line}")
    began = time.monotonic()
    try:
        asyncio.run(_drive(ctx, simulator, mqtt_url, tenant, until))
    except KeyboardInterrupt:
        pass
    except (aiomqtt.MqttError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot publish to {mqtt_url}: {exc}") from exc
    elapsed = time.monotonic() - began
    click.echo(
        f"Sent {simulator.sent} readings in {elapsed:.0f} s ({simulator.sent / max(elapsed, 1e-9):.1f}/s)."
    )


async def _drive(
    ctx: AppContext, simulator: Simulator, mqtt_url: str | None, tenant: str, until: float | None
) -> None:
    """Run the simulator into the broker or the in-process ingest."""
    if mqtt_url is None:
        await simulator.run(InternalSink(ctx, tenant), until=until)
        return
    async with mqtt_client(mqtt_url) as client:
        await simulator.run(MqttSink(client, tenant), until=until)


COMMANDS = (simulate,)
