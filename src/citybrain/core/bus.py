"""Typed event bus with an in-memory backend and a NATS JetStream backend."""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, Header, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from citybrain.core.ids import uuid4

__all__ = [
    "Bus",
    "DeadLetter",
    "E",
    "Event",
    "Handler",
    "InMemoryBus",
    "NatsBus",
    "create_bus",
]

logger = logging.getLogger(__name__)

# Dot-separated lowercase tokens, no wildcards: "identity.user.created".
_SUBJECT_RE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
# No "_" so that mapping "." to "_" gives collision-free NATS consumer names.
_DURABLE_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# Pause of a NATS fetch loop after a connection-level error (e.g. while reconnecting).
_FETCH_ERROR_PAUSE = 1.0
# How long one NATS fetch request waits for a message before it is renewed.
_FETCH_TIMEOUT = 5.0


class Event(BaseModel):
    """Base of every bus event; subclasses set `subject` as a ClassVar."""

    model_config = ConfigDict(frozen=True)

    subject: ClassVar[str]
    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a durable gave up on; `event_id` is None when the payload could not be decoded."""

    durable: str
    subject: str
    event_id: UUID | None
    error: str


@dataclass(frozen=True, slots=True)
class _Subscription:
    """One registered handler."""

    event_type: type[Event]
    handler: Handler[Any]
    durable: str
    max_deliver: int

    @property
    def subject(self) -> str:
        """The event subject (without namespace)."""
        return self.event_type.subject


def _subject_of(event_type: type[Event]) -> str:
    """Return the validated subject of an event class."""
    subject = getattr(event_type, "subject", None)
    if not isinstance(subject, str) or not _SUBJECT_RE.fullmatch(subject):
        raise ValueError(f"{event_type.__name__}.subject must be dot-separated lowercase tokens: {subject!r}")
    return subject


class Bus(ABC):
    """A typed publish/subscribe bus with at-least-once delivery to durable consumers."""

    def __init__(self, *, retry_delay: float = 0.05) -> None:
        """Set up an empty, stopped bus; a failed attempt n is retried after n * retry_delay seconds."""
        self._retry_delay = retry_delay
        self._subscriptions: list[_Subscription] = []
        self._dead_letters: list[DeadLetter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def start(self) -> None:
        """Connect; after this, publish works and registered subscriptions consume."""

    @abstractmethod
    async def stop(self) -> None:
        """Drain and close cleanly; idempotent."""

    async def publish(self, event: Event) -> None:
        """Publish an event; it is durable once this returns."""
        await self.publish_json(type(event), event.model_dump_json(), str(event.event_id))

    @abstractmethod
    async def publish_json(self, event_type: type[Event], data: str, event_id: str) -> None:
        """Publish an event given as its model's JSON (as an outbox row keeps it), without decoding it."""

    @abstractmethod
    def _attach(self, sub: _Subscription) -> None:
        """Make a newly registered subscription consume (now if running, else on start)."""

    def subscribe(
        self, event_type: type[E], handler: Handler[E], *, durable: str, max_deliver: int = 5
    ) -> None:
        """Register `handler` for every event of `event_type` under the durable consumer `durable`."""
        _subject_of(event_type)
        if not _DURABLE_RE.fullmatch(durable):
            raise ValueError(f"durable must be dot-separated tokens of letters, digits and '-': {durable!r}")
        if max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1, got {max_deliver}")
        same = [other for other in self._subscriptions if other.durable == durable]
        if same and (same[0].event_type, same[0].max_deliver) != (event_type, max_deliver):
            raise ValueError(f"durable {durable!r} is registered with another event type or max_deliver")
        sub = _Subscription(event_type, handler, durable, max_deliver)
        self._subscriptions.append(sub)
        self._attach(sub)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Events given up on since start."""
        return list(self._dead_letters)

    async def __aenter__(self) -> Self:
        """Start the bus."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the bus."""
        await self.stop()

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt`."""
        return self._retry_delay * attempt

    def _give_up(self, durable: str, subject: str, event_id: UUID | None, exc: Exception) -> None:
        """Record a dead letter and log it at ERROR."""
        self._dead_letters.append(DeadLetter(durable, subject, event_id, f"{type(exc).__name__}: {exc}"))
        logger.error(
            "Giving up on event: durable=%s subject=%s event_id=%s", durable, subject, event_id, exc_info=exc
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background task that stop() cancels."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished task, logging it if it crashed."""
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("Bus consumer task crashed; its subscription no longer consumes", exc_info=exc)

    async def _cancel_tasks(self) -> None:
        """Cancel all background tasks and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# An event's JSON, and its decodings shared by the durables it is queued for.
_Queued = tuple[str, dict[type[Event], Event | ValidationError]]


@dataclass
class _MemoryDurable:
    """In-memory state of one durable consumer."""

    name: str
    event_type: type[Event]
    max_deliver: int
    handlers: list[Handler[Any]] = field(default_factory=list)
    queue: asyncio.Queue[_Queued] = field(default_factory=asyncio.Queue)
    turn: int = 0
    busy: bool = False

    def next_handler(self) -> Handler[Any]:
        """Pick handlers round-robin, so subscribers sharing the durable compete for events."""
        handler = self.handlers[self.turn % len(self.handlers)]
        self.turn += 1
        return handler


class InMemoryBus(Bus):
    """Single-process bus for tests and development; events do not survive the process."""

    def __init__(self, *, retry_delay: float = 0.05) -> None:
        """Create a stopped in-memory bus."""
        super().__init__(retry_delay=retry_delay)
        self._durables: dict[str, _MemoryDurable] = {}
        self._running = False

    async def start(self) -> None:
        """Start one consumer task per durable."""
        if self._running:
            raise RuntimeError("bus already started")
        self._running = True
        self._dead_letters.clear()
        for durable in self._durables.values():
            self._spawn(self._consume(durable))

    async def stop(self) -> None:
        """Wait until every queued event is handled (even ones published meanwhile), then stop."""
        if not self._running:
            return
        durables = self._durables.values()
        # Loop because a handler of one durable may publish to another durable that was already idle.
        while any(durable.busy or not durable.queue.empty() for durable in durables):
            await asyncio.gather(*(durable.queue.join() for durable in durables))
        self._running = False
        await self._cancel_tasks()

    async def publish_json(self, event_type: type[Event], data: str, event_id: str) -> None:
        """Enqueue the event for every durable subscribed to its subject."""
        if not self._running:
            raise RuntimeError("bus not started")
        subject = _subject_of(event_type)
        # Events are frozen: durables of the same event class share one decoded event.
        decoded: dict[type[Event], Event | ValidationError] = {}
        for durable in self._durables.values():
            if durable.event_type.subject == subject:
                durable.queue.put_nowait((data, decoded))

    def _attach(self, sub: _Subscription) -> None:
        """Add the handler to its durable, creating (and starting) the durable if new."""
        durable = self._durables.get(sub.durable)
        if durable is None:
            durable = self._durables[sub.durable] = _MemoryDurable(
                sub.durable, sub.event_type, sub.max_deliver
            )
            if self._running:
                self._spawn(self._consume(durable))
        durable.handlers.append(sub.handler)

    async def _consume(self, durable: _MemoryDurable) -> None:
        """Handle the durable's events one at a time, in order."""
        while True:
            item = await durable.queue.get()
            durable.busy = True
            try:
                await self._deliver(durable, item)
            finally:
                durable.busy = False
                durable.queue.task_done()

    async def _deliver(self, durable: _MemoryDurable, item: _Queued) -> None:
        """Run a handler on one event, retrying up to max_deliver attempts, then dead-letter it."""
        subject = durable.event_type.subject
        data, decoded = item
        event = decoded.get(durable.event_type)
        if event is None:
            try:
                event = durable.event_type.model_validate_json(data)
            except ValidationError as exc:
                event = exc
            decoded[durable.event_type] = event
        if isinstance(event, ValidationError):
            self._give_up(durable.name, subject, None, event)
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await durable.next_handler()(event)
                return
            except Exception as exc:
                if attempt >= durable.max_deliver:
                    self._give_up(durable.name, subject, event.event_id, exc)
                    return
                logger.warning(
                    "Handler failed (attempt %d/%d): durable=%s subject=%s event_id=%s: %r",
                    attempt, durable.max_deliver, durable.name, subject, event.event_id, exc,
                )  # fmt: skip
                await asyncio.sleep(self._backoff(attempt))


class NatsBus(Bus):
    """Bus on NATS JetStream: one stream per bus, one durable pull consumer per durable name."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "CITYBRAIN",
        namespace: str = "citybrain",
        retry_delay: float = 0.05,
        ack_wait: float = 30.0,
        connect_timeout: float = 15.0,
    ) -> None:
        """Create a stopped bus; an event unacked after `ack_wait` seconds is redelivered."""
        super().__init__(retry_delay=retry_delay)
        if not _SUBJECT_RE.fullmatch(namespace):
            raise ValueError(f"namespace must be dot-separated lowercase tokens: {namespace!r}")
        self._url = url
        self._stream = stream
        self._namespace = namespace
        self._ack_wait = ack_wait
        self._connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    async def start(self) -> None:
        """Connect (failing after `connect_timeout` s), ensure the stream, and bind all consumers."""
        if self._nc is not None:
            raise RuntimeError("bus already started")
        self._dead_letters.clear()
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(self._url, name=f"citybrain-bus-{self._namespace}", max_reconnect_attempts=-1),
                timeout=self._connect_timeout,
            )
        except TimeoutError:
            raise ConnectionError(
                f"cannot reach NATS at {self._url} within {self._connect_timeout:g} s (CITYBRAIN_BUS_URL)"
            ) from None
        self._js = self._nc.jetstream()
        try:
            await self._ensure_stream()
            for sub in self._subscriptions:
                self._spawn(self._consume(sub, await self._bind(sub)))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the fetch loops (unacked events are redelivered later), then drain the connection."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        await self._cancel_tasks()
        self._js = None
        await nc.drain()

    async def publish_json(self, event_type: type[Event], data: str, event_id: str) -> None:
        """Publish and wait for the stream's ack; re-publishing an event_id is de-duplicated."""
        if self._js is None:
            raise RuntimeError("bus not started")
        await self._js.publish(
            self._wire_subject(_subject_of(event_type)),
            data.encode(),
            stream=self._stream,
            headers={Header.MSG_ID.value: event_id},
        )

    def _attach(self, sub: _Subscription) -> None:
        """Bind and start consuming right away if the bus is running."""
        if self._nc is not None:
            self._spawn(self._bind_and_consume(sub))

    async def _ensure_stream(self) -> None:
        """Create the stream, or add the namespace's subjects to an existing one, keeping its settings."""
        assert self._js is not None
        subjects = f"{self._namespace}.>"
        try:
            info = await self._js.stream_info(self._stream)
        except NotFoundError:
            await self._js.add_stream(StreamConfig(name=self._stream, subjects=[subjects]))
            return
        if subjects not in (info.config.subjects or []):
            new_subjects = [*(info.config.subjects or []), subjects]
            await self._js.update_stream(info.config.evolve(subjects=new_subjects))

    def _wire_subject(self, subject: str) -> str:
        """Return the NATS subject of an event subject."""
        return f"{self._namespace}.{subject}"

    async def _bind(self, sub: _Subscription) -> JetStreamContext.PullSubscription:
        """Create or update the durable pull consumer and subscribe to it."""
        assert self._js is not None
        name = sub.durable.replace(".", "_")
        config = ConsumerConfig(
            name=name,
            durable_name=name,
            filter_subject=self._wire_subject(sub.subject),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            # One extra delivery, used only to dead-letter an event whose last attempt never
            # finished (crash or ack timeout) instead of letting the server drop it silently.
            max_deliver=sub.max_deliver + 1,
        )
        await self._js.add_consumer(self._stream, config)
        return await self._js.pull_subscribe_bind(durable=name, stream=self._stream)

    async def _bind_and_consume(self, sub: _Subscription) -> None:
        """Bind a subscription registered after start and consume it."""
        await self._consume(sub, await self._bind(sub))

    async def _consume(self, sub: _Subscription, psub: JetStreamContext.PullSubscription) -> None:
        """Fetch and handle one message at a time until cancelled."""
        while True:
            try:
                for msg in await psub.fetch(1, timeout=_FETCH_TIMEOUT):
                    await self._handle(sub, msg)
            except TimeoutError:
                continue
            except nats.errors.Error as exc:
                logger.warning("Fetch failed: durable=%s: %r", sub.durable, exc)
                await asyncio.sleep(_FETCH_ERROR_PAUSE)

    async def _handle(self, sub: _Subscription, msg: Msg) -> None:
        """Run the handler on one message and ack, nak (with backoff) or term it."""
        attempt = msg.metadata.num_delivered
        try:
            event = sub.event_type.model_validate_json(msg.data)
        except ValidationError as exc:
            self._give_up(sub.durable, sub.subject, None, exc)
            await msg.term()
            return
        if attempt > sub.max_deliver:
            error = TimeoutError(
                f"no outcome after {sub.max_deliver} deliveries (crash or ack_wait exceeded)"
            )
            self._give_up(sub.durable, sub.subject, event.event_id, error)
            await msg.term()
            return
        try:
            await sub.handler(event)
        except Exception as exc:
            if attempt >= sub.max_deliver:
                self._give_up(sub.durable, sub.subject, event.event_id, exc)
                await msg.term()
                return
            logger.warning(
                "Handler failed (attempt %d/%d): durable=%s subject=%s event_id=%s: %r",
                attempt, sub.max_deliver, sub.durable, sub.subject, event.event_id, exc,
            )  # fmt: skip
            await msg.nak(delay=self._backoff(attempt))
        else:
            await msg.ack()


def create_bus(url: str, *, stream: str = "CITYBRAIN", namespace: str = "citybrain") -> Bus:
    """Create a bus from a URL: "memory://" or "nats://host:port"."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return InMemoryBus()
    if scheme == "nats":
        return NatsBus(url, stream=stream, namespace=namespace)
    raise ValueError(f"unsupported bus URL {url!r}: expected 'memory://' or 'nats://host:port'")
