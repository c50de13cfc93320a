"""Tests of the event bus; the behavioural tests run on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, NoReturn

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from citybrain.core.bus import Bus, Event, InMemoryBus, NatsBus, create_bus

NATS_URL = os.environ.get("CITYBRAIN_NATS_URL", "nats://127.0.0.1:4222")


class UserCreated(Event):
    subject: ClassVar[str] = "identity.user.created"
    user_id: int
    name: str


class UserCreatedView(Event):
    """A consumer's own, narrower model of the same event."""

    subject: ClassVar[str] = "identity.user.created"
    user_id: int


class Tick(Event):
    subject: ClassVar[str] = "test.tick"
    seq: int


async def eventually(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def recorder() -> tuple[list[Event], Callable[[Event], Awaitable[None]]]:
    """Return a list and a handler appending every event it gets to that list."""
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    return seen, handler


def seqs(events: list[Event]) -> list[int]:
    """Sequence numbers of Tick events."""
    return [event.seq for event in events if isinstance(event, Tick)]


# --- fixtures --------------------------------------------------------------------------------------


def _unavailable(reason: object) -> NoReturn:
    message = f"NATS JetStream not reachable at {NATS_URL}: {reason!r}"
    if os.environ.get("CITYBRAIN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (CITYBRAIN_REQUIRE_SERVICES=1, so this is an error, not a skip)")
    pytest.skip(message)


async def _ignore(error: Exception) -> None:
    """NATS error callback that stays quiet (failures are reported by _unavailable)."""


async def _connect_or_skip() -> Client:
    try:
        # One quick try: nats-py keeps retrying an initial connect even with allow_reconnect=False.
        nc = await nats.connect(
            NATS_URL,
            allow_reconnect=False,
            connect_timeout=1,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=_ignore,
        )
    except Exception as exc:
        _unavailable(exc)
    try:
        await nc.jetstream().account_info()
    except Exception as exc:
        await nc.close()
        _unavailable(exc)
    return nc


@dataclass
class NatsEnv:
    """A unique stream + namespace, and the buses created on it."""

    js: JetStreamContext
    stream: str
    namespace: str
    buses: list[NatsBus] = field(default_factory=list)

    def bus(self, *, ack_wait: float = 30.0) -> NatsBus:
        bus = NatsBus(
            NATS_URL, stream=self.stream, namespace=self.namespace, retry_delay=0.01, ack_wait=ack_wait
        )
        self.buses.append(bus)
        return bus


@pytest.fixture
async def nats_env() -> AsyncIterator[NatsEnv]:
    nc = await _connect_or_skip()
    suffix = uuid.uuid4().hex[:12]
    env = NatsEnv(nc.jetstream(), stream=f"TEST_{suffix}", namespace=f"test{suffix}")
    try:
        yield env
    finally:
        for bus in env.buses:
            await bus.stop()
        with contextlib.suppress(NotFoundError):
            await env.js.delete_stream(env.stream)
        await nc.close()


@pytest.fixture
async def memory_bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus(retry_delay=0.01)
    yield bus
    await bus.stop()


@pytest.fixture
def nats_bus(nats_env: NatsEnv) -> NatsBus:
    return nats_env.bus()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus(request: pytest.FixtureRequest) -> Bus:
    """A not yet started bus of each backend."""
    result: Bus = request.getfixturevalue(f"{request.param}_bus")
    return result


# --- both backends ---------------------------------------------------------------------------------


async def test_published_event_reaches_subscriber_as_same_type(bus: Bus) -> None:
    seen, handler = recorder()
    bus.subscribe(UserCreated, handler, durable="identity.on-user-created")
    await bus.start()
    event = UserCreated(user_id=7, name="Ada")
    await bus.publish(Tick(seq=1))  # another subject: must not reach the handler
    await bus.publish(event)

    await eventually(lambda: len(seen) == 1)
    await bus.stop()
    assert type(seen[0]) is UserCreated
    assert seen[0] == event
    assert seen == [event]
    assert bus.dead_letters == []


async def test_subscriber_decodes_with_its_own_event_type(bus: Bus) -> None:
    seen, handler = recorder()
    bus.subscribe(UserCreatedView, handler, durable="view")
    await bus.start()
    event = UserCreated(user_id=7, name="Ada")
    await bus.publish(event)

    await eventually(lambda: len(seen) == 1)
    assert seen[0] == UserCreatedView(user_id=7, event_id=event.event_id, occurred_at=event.occurred_at)


async def test_subscribing_after_start_consumes(bus: Bus) -> None:
    await bus.start()
    seen, handler = recorder()
    bus.subscribe(Tick, handler, durable="late")
    await bus.publish(Tick(seq=1))

    await eventually(lambda: seqs(seen) == [1])


async def test_each_durable_gets_every_event(bus: Bus) -> None:
    seen_a, handler_a = recorder()
    seen_b, handler_b = recorder()
    bus.subscribe(Tick, handler_a, durable="a")
    bus.subscribe(Tick, handler_b, durable="b")
    await bus.start()
    for seq in range(5):
        await bus.publish(Tick(seq=seq))

    await eventually(lambda: len(seen_a) == 5 and len(seen_b) == 5)
    await bus.stop()
    assert sorted(seqs(seen_a)) == list(range(5))
    assert sorted(seqs(seen_b)) == list(range(5))


async def test_subscribers_sharing_a_durable_split_the_work(bus: Bus) -> None:
    seen_a: list[Event] = []
    seen_b: list[Event] = []

    async def slow_a(event: Tick) -> None:
        await asyncio.sleep(0.01)  # busy for a while, so the other subscriber gets work meanwhile
        seen_a.append(event)

    async def slow_b(event: Tick) -> None:
        await asyncio.sleep(0.01)
        seen_b.append(event)

    bus.subscribe(Tick, slow_a, durable="shared")
    bus.subscribe(Tick, slow_b, durable="shared")
    await bus.start()
    for seq in range(20):
        await bus.publish(Tick(seq=seq))

    await eventually(lambda: len(seen_a) + len(seen_b) == 20)
    await bus.stop()
    assert sorted(seqs(seen_a) + seqs(seen_b)) == list(range(20))  # each event handled exactly once
    assert seen_a
    assert seen_b


async def test_events_are_handled_in_order_within_a_durable(bus: Bus) -> None:
    seen, handler = recorder()
    bus.subscribe(Tick, handler, durable="ordered")
    await bus.start()
    for seq in range(30):
        await bus.publish(Tick(seq=seq))

    await eventually(lambda: len(seen) == 30)
    assert seqs(seen) == list(range(30))


async def test_failing_handler_is_retried_until_it_succeeds(bus: Bus) -> None:
    calls: list[Event] = []

    async def flaky(event: Tick) -> None:
        calls.append(event)
        if len(calls) <= 2:
            raise RuntimeError("temporary failure")

    bus.subscribe(Tick, flaky, durable="flaky", max_deliver=5)
    await bus.start()
    event = Tick(seq=1)
    await bus.publish(event)

    await eventually(lambda: len(calls) == 3)
    await bus.stop()
    assert calls == [event, event, event]
    assert bus.dead_letters == []


async def test_always_failing_handler_is_dead_lettered_after_max_deliver(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Event] = []

    async def broken(event: Tick) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    bus.subscribe(Tick, broken, durable="warning.broken", max_deliver=3)
    await bus.start()
    event = Tick(seq=1)
    await bus.publish(event)

    await eventually(lambda: len(bus.dead_letters) == 1)
    await bus.stop()
    assert len(calls) == 3
    [letter] = bus.dead_letters
    assert (letter.durable, letter.subject, letter.event_id) == (
        "warning.broken",
        "test.tick",
        event.event_id,
    )
    assert "boom" in letter.error
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("warning.broken" in m and "test.tick" in m and str(event.event_id) in m for m in errors)


async def test_publish_requires_start_and_stop_is_idempotent(bus: Bus) -> None:
    await bus.stop()
    with pytest.raises(RuntimeError):
        await bus.publish(Tick(seq=1))
    await bus.start()
    await bus.stop()
    await bus.stop()
    with pytest.raises(RuntimeError):
        await bus.publish(Tick(seq=1))


async def test_subscribe_rejects_bad_arguments(bus: Bus) -> None:
    _, handler = recorder()
    bus.subscribe(Tick, handler, durable="taken")
    with pytest.raises(ValueError, match="durable"):
        bus.subscribe(Tick, handler, durable="has space")
    with pytest.raises(ValueError, match="durable"):
        bus.subscribe(Tick, handler, durable="under_score")
    with pytest.raises(ValueError, match="taken"):
        bus.subscribe(UserCreated, handler, durable="taken")
    with pytest.raises(ValueError, match="max_deliver"):
        bus.subscribe(Tick, handler, durable="other", max_deliver=0)


# --- one backend only ------------------------------------------------------------------------------


async def test_memory_stop_drains_events_published_by_handlers(memory_bus: InMemoryBus) -> None:
    async def forward(event: Tick) -> None:
        await asyncio.sleep(0.01)
        await memory_bus.publish(UserCreated(user_id=event.seq, name="follow-up"))

    seen: list[UserCreated] = []

    async def receive(event: UserCreated) -> None:
        await asyncio.sleep(0.01)
        seen.append(event)

    memory_bus.subscribe(Tick, forward, durable="forwarder")
    memory_bus.subscribe(UserCreated, receive, durable="receiver")
    await memory_bus.start()
    await memory_bus.publish(Tick(seq=3))
    await memory_bus.stop()

    assert [(e.user_id, e.name) for e in seen] == [(3, "follow-up")]
    assert memory_bus.dead_letters == []


@pytest.mark.nats
async def test_start_keeps_an_existing_streams_settings(nats_env: NatsEnv) -> None:
    elsewhere = f"elsewhere-{nats_env.namespace}.>"
    await nats_env.js.add_stream(name=nats_env.stream, subjects=[elsewhere], max_age=3600)
    bus = nats_env.bus()
    await bus.start()
    await bus.publish(Tick(seq=1))

    config = (await nats_env.js.stream_info(nats_env.stream)).config
    assert config.subjects == [elsewhere, f"{nats_env.namespace}.>"]
    assert config.max_age == 3600


# --- NATS only -------------------------------------------------------------------------------------


@pytest.mark.nats
async def test_events_wait_for_a_durable_that_is_not_running(nats_env: NatsEnv) -> None:
    first_run = nats_env.bus()
    seen_first, handler_first = recorder()
    first_run.subscribe(Tick, handler_first, durable="audit")
    await first_run.start()
    await first_run.publish(Tick(seq=0))
    await eventually(lambda: seqs(seen_first) == [0])

    async def acked() -> bool:
        info = await nats_env.js.consumer_info(nats_env.stream, "audit")
        return bool(info.num_ack_pending == 0 and info.ack_floor.stream_seq == 1)

    await eventually(acked)
    await first_run.stop()

    publisher = nats_env.bus()
    await publisher.start()
    await publisher.publish(Tick(seq=1))
    await publisher.stop()

    second_run = nats_env.bus()
    seen_second, handler_second = recorder()
    second_run.subscribe(Tick, handler_second, durable="audit")
    await second_run.start()
    await eventually(lambda: len(seen_second) == 1)
    assert seqs(seen_second) == [1]  # gets what it missed, not what it already acked


@pytest.mark.nats
async def test_unacked_event_is_redelivered_after_a_consumer_crash(nats_env: NatsEnv) -> None:
    stuck = asyncio.Event()

    async def hang(event: Tick) -> None:
        stuck.set()
        await asyncio.Event().wait()  # never returns, never acks: a crashed or hung consumer

    crashed = nats_env.bus(ack_wait=1.0)
    crashed.subscribe(Tick, hang, durable="worker")
    await crashed.start()
    event = Tick(seq=1)
    loop = asyncio.get_running_loop()
    published_at = loop.time()
    await crashed.publish(event)
    await eventually(stuck.is_set)

    healthy = nats_env.bus(ack_wait=1.0)
    seen, handler = recorder()
    healthy.subscribe(Tick, handler, durable="worker")
    await healthy.start()
    await eventually(lambda: len(seen) == 1)
    assert seen == [event]
    assert loop.time() - published_at >= 0.95  # redelivered because ack_wait (1 s) expired
    assert healthy.dead_letters == []


@pytest.mark.nats
async def test_event_whose_last_attempt_never_finished_is_dead_lettered(nats_env: NatsEnv) -> None:
    stuck = asyncio.Event()

    async def hang(event: Tick) -> None:
        stuck.set()
        await asyncio.Event().wait()

    crashed = nats_env.bus(ack_wait=1.0)
    crashed.subscribe(Tick, hang, durable="once", max_deliver=1)
    await crashed.start()
    event = Tick(seq=1)
    await crashed.publish(event)
    await eventually(stuck.is_set)

    healthy = nats_env.bus(ack_wait=1.0)
    seen, handler = recorder()
    healthy.subscribe(Tick, handler, durable="once", max_deliver=1)
    await healthy.start()
    await eventually(lambda: len(healthy.dead_letters) == 1)
    assert healthy.dead_letters[0].event_id == event.event_id
    assert seen == []  # its one attempt is used up: given up on, not retried


@pytest.mark.nats
async def test_republishing_an_event_is_deduplicated(nats_bus: NatsBus) -> None:
    seen, handler = recorder()
    nats_bus.subscribe(Tick, handler, durable="dedup")
    await nats_bus.start()
    event = Tick(seq=1)
    await nats_bus.publish(event)
    await nats_bus.publish(event)
    await nats_bus.publish(Tick(seq=2))

    await eventually(lambda: 2 in seqs(seen))
    assert seqs(seen) == [1, 2]


# --- factory ---------------------------------------------------------------------------------------


def test_create_bus_picks_the_backend_from_the_url() -> None:
    assert isinstance(create_bus("memory://"), InMemoryBus)
    assert isinstance(create_bus("nats://127.0.0.1:4222", stream="S", namespace="ns"), NatsBus)
    with pytest.raises(ValueError, match="redis://localhost:6379"):
        create_bus("redis://localhost:6379")


async def test_unreachable_nats_fails_fast_naming_the_url() -> None:
    bus = NatsBus("nats://127.0.0.1:1", connect_timeout=0.5)
    with pytest.raises(ConnectionError, match=r"nats://127\.0\.0\.1:1.*CITYBRAIN_BUS_URL"):
        await bus.start()
