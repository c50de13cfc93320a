"""The running platform's shared state, built once by create_app and passed down."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic_settings import BaseSettings
from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.orm import Session

from citybrain.core.aio import wait_event
from citybrain.core.apps import AppSpec
from citybrain.core.bus import Bus, Event
from citybrain.core.db import Database, OutboxRow, UnitOfWork, utcnow
from citybrain.core.i18n import I18n
from citybrain.core.permissions import Actor, Permission
from citybrain.core.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseSettings)
# How long published outbox rows are kept before the relay deletes them.
KEEP_PUBLISHED = timedelta(hours=1)
# How long the relay, woken by a commit, waits for further commits to relay together.
GATHER_SECONDS = 0.005
OUTBOX = cast(Table, OutboxRow.__table__)
Authenticator = Callable[["AppContext", "Request"], Actor | None]


@dataclass
class AppContext:
    """Settings, storage, bus, catalogue and the enabled apps of one running platform."""

    settings: Settings
    apps: list[AppSpec]
    db: Database
    bus: Bus
    i18n: I18n
    permissions: dict[str, Permission]
    app_settings: dict[str, BaseSettings] = field(default_factory=dict)
    authenticators: list[Authenticator] = field(default_factory=list)
    relay: OutboxRelay | None = None
    # Runtime objects apps' lifespans start (keyed `<label>.<name>`), for their routes to reach.
    extensions: dict[str, Any] = field(default_factory=dict)

    def uow(self, actor: Actor, action: str) -> UnitOfWork:
        """A unit of work for one service operation; its events are relayed after commit."""
        return UnitOfWork(self.db, actor, action, on_commit=self.relay.kick if self.relay else None)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session."""
        with self.db.read() as session:
            yield session

    def app(self, label: str) -> AppSpec | None:
        """The enabled app with this label, if any."""
        return next((spec for spec in self.apps if spec.label == label), None)

    def app_setting(self, label: str, cls: type[T]) -> T:
        """An app's typed settings."""
        value = self.app_settings[label]
        if not isinstance(value, cls):
            raise TypeError(f"settings of {label!r} are not {cls.__name__}")
        return value


_EVENT_ID = re.compile(r'"event_id":"([^"]+)"')


def _event_id(payload: str) -> str:
    """The event_id of an event's JSON (models and outbox documents write it first), without decoding it all."""
    found = _EVENT_ID.search(payload, 0, 200) or _EVENT_ID.search(payload)
    return found.group(1) if found else str(json.loads(payload).get("event_id", ""))


@functools.lru_cache(maxsize=512)
def _event_class(path: str) -> type[Event]:
    """Import an event class from `module:QualName`."""
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Event)):
        raise TypeError(f"{path} is not an Event")
    return obj


class OutboxRelay:
    """Publishes committed outbox rows to the bus in order; kicked after each commit, polls as a fallback."""

    def __init__(self, db: Database, bus: Bus, poll_seconds: float = 1.0) -> None:
        """Prepare the relay; `start()` runs it on the current event loop."""
        self.db, self.bus, self.poll_seconds = db, bus, poll_seconds
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._swept = utcnow()

    def kick(self) -> None:
        """Wake the relay (safe from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Start relaying on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="citybrain-outbox-relay")

    async def stop(self) -> None:
        """Publish what is pending, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            try:
                await self.flush()
            except Exception:
                log.exception("outbox relay failed; retrying")
            if await wait_event(self._wake, self.poll_seconds):
                # Woken by a commit: let the commits of the next moment join, so that one read and one
                # mark relay them all (busy writers commit hundreds of times a second).
                await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()

    async def flush(self) -> int:
        """Publish every pending row; return how many were published."""
        published = 0
        while True:
            rows = await asyncio.to_thread(self._pending)
            if not rows:
                return published
            done: list[int] = []
            try:
                for row_id, event_type, payload in rows:
                    # The payload is the event's own JSON: handed on as it is, decoded only by its consumers.
                    await self.bus.publish_json(_event_class(event_type), payload, _event_id(payload))
                    done.append(row_id)
            finally:
                if done:
                    await asyncio.to_thread(self._mark, done)
            published += len(done)

    def _pending(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        outbox = OUTBOX.c
        stmt = (
            select(outbox.id, outbox.event_type, outbox.payload)
            .where(outbox.published_at.is_(None))
            .order_by(outbox.id)
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            return [(r.id, r.event_type, r.payload) for r in conn.execute(stmt)]

    def _mark(self, row_ids: list[int]) -> None:
        now = utcnow()
        outbox = OUTBOX.c
        with self.db.write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A mark lost in a crash only means the event is published again (delivery is at least
                # once anyway): no need to wait for the disk.
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            conn.execute(update(OUTBOX).where(outbox.id.in_(row_ids)).values(published_at=now))
            # Published rows stay a while for inspection, then go, so the outbox never grows without bound.
            if now - self._swept > KEEP_PUBLISHED / 10:
                conn.execute(delete(OUTBOX).where(outbox.published_at < now - KEEP_PUBLISHED))
                self._swept = now
