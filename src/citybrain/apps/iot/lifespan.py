"""The iot app's background work: the MQTT ingest worker, the device status monitor, retention.

The MQTT worker has a fixed client id (its persistent session lives under that id at the broker), so
one process of a host runs it: with `citybrain serve --workers N` the processes take a lock file named
after the client id, and whichever holds it runs the worker; the others try again every few seconds and
take over when the holder stops. (Two hosts need client ids of their own.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from citybrain.apps.iot import services
from citybrain.apps.iot.mqtt import MqttIngest
from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import AppContext

log = logging.getLogger(__name__)
WORKER = "iot.mqtt"
# Retention runs this often (the status monitor runs every `status_check_seconds`).
PURGE_SECONDS = 3600.0
# How often a process without the worker checks whether it may run it.
LEADER_RETRY_SECONDS = 5.0


class HostLock:
    """An exclusive lock file held by one process of the host at a time (released when it exits)."""

    def __init__(self, path: Path) -> None:
        """Remember the path; nothing is locked yet."""
        self.path = path
        self._handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; True when this process holds it."""
        try:
            import fcntl
        except ImportError:  # no POSIX locks on this platform: every process runs its worker
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        """Give the lock up."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Start the MQTT worker (when a broker is configured) and the status monitor; stop both at shutdown."""
    settings = ctx.app_setting("iot", IotSettings)
    tasks = [asyncio.create_task(_monitor(ctx, settings), name="citybrain-iot-monitor")]
    lock: HostLock | None = None
    if settings.mqtt_url:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.mqtt_client_id)
        lock = HostLock(ctx.settings.data_dir / f"iot-mqtt-{name}.lock")
        tasks.append(asyncio.create_task(_run_worker(ctx, settings, lock), name="citybrain-iot-mqtt"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        worker: MqttIngest | None = ctx.extensions.pop(WORKER, None)
        if worker is not None:
            await asyncio.to_thread(worker.stop, ctx.settings.shutdown_seconds)
        if lock is not None:
            lock.release()


async def _run_worker(ctx: AppContext, settings: IotSettings, lock: HostLock) -> None:
    """Run the MQTT worker once this process holds the host's lock for its client id."""
    waited = False
    while not lock.acquire():
        if not waited:
            log.info("another process of this host runs the MQTT worker; standing by")
            waited = True
        await asyncio.sleep(LEADER_RETRY_SECONDS)
    worker = MqttIngest(ctx, settings)
    worker.start()
    ctx.extensions[WORKER] = worker


async def _monitor(ctx: AppContext, settings: IotSettings) -> None:
    """Mark silent devices offline every few seconds; delete old rejected messages and counters hourly."""
    purged: float | None = None
    while True:
        try:
            gone = await asyncio.to_thread(services.mark_offline, ctx)
            if gone:
                log.info("%d devices went offline", gone)
            if purged is None or time.monotonic() - purged > PURGE_SECONDS:
                await asyncio.to_thread(services.purge, ctx)
                purged = time.monotonic()
        except Exception:
            log.exception("the device status monitor failed; trying again later")
        await asyncio.sleep(settings.status_check_seconds)
