"""The MQTT ingest worker: a persistent QoS 1 subscription whose messages are acknowledged once stored.

The worker subscribes to `citybrain/<tenant>/<device-id>/attrs` (tenant "default" is the default tenant)
as MQTT 5 with a fixed client id, Clean Start off and a session expiry, so the broker keeps what arrives
while the worker is down. Acknowledgements are manual (paho-mqtt's `manual_ack`): messages are batched
(up to `mqtt_batch_size` messages or `mqtt_batch_ms` after the first), stored with `ingest_messages` in a
store thread, and only then acknowledged, batch by batch in the order they arrived. A batch that cannot
be stored (the database is down) is retried with exponential back-off and stays unacknowledged; so is
everything queued behind it. paho reconnects with exponential back-off when the broker goes away; after
a reconnect the broker resends what was not acknowledged (the session is resumed), so acknowledgements
of messages that arrived over an earlier connection are dropped: their packet ids belong to the broker's
resends now. Storing is idempotent, so a message stored twice (before a crash, then resent) is kept once.

The broker's own limits apply: Mosquitto keeps at most `max_queued_messages` (default 1000) per offline
client; raise it (or set 0) on a broker whose devices must not lose readings during an outage.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DBAPIError

from citybrain.apps.iot.payloads import N_
from citybrain.apps.iot.schemas import IngestReport, Message
from citybrain.apps.iot.settings import IotSettings
from citybrain.sdk import AppContext, utcnow

log = logging.getLogger(__name__)
DEFAULT_TENANT_SEGMENT = "default"
Store = Callable[[Sequence[Message]], IngestReport]


@dataclass(frozen=True, slots=True)
class Received:
    """A message as it arrived: the connection it came over, its packet id, and what it carries."""

    generation: int
    mid: int
    qos: int
    message: Message
    arrived: float


def topic_parts(topic: str) -> tuple[str, str]:
    """(tenant, device id) of a topic `citybrain/<tenant>/<device-id>/attrs`; other topics give ('', topic)."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "citybrain" and parts[3] == "attrs":
        tenant = "" if parts[1] == DEFAULT_TENANT_SEGMENT else parts[1]
        return tenant, parts[2]
    return "", topic


class MqttIngest:
    """Subscribes, batches, stores, then acknowledges; reconnects and retries with back-off."""

    def __init__(self, ctx: AppContext, settings: IotSettings, store: Store | None = None) -> None:
        """Prepare the worker; `start()` connects (in the background) and starts the store threads."""
        from citybrain.apps.iot.services import ingest_messages

        if not settings.mqtt_url:
            raise ValueError("no MQTT URL is configured")
        self.ctx, self.settings = ctx, settings
        self._store: Store = store or (lambda messages: ingest_messages(ctx, messages))
        url = urlsplit(settings.mqtt_url)
        self._host = url.hostname or "127.0.0.1"
        self._tls = url.scheme == "mqtts"
        self._port = url.port or (8883 if self._tls else 1883)
        self._queue: deque[Received] = deque()
        self._cond = threading.Condition()
        # Guards the connection generation and the acknowledgements sent for it.
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Batches are numbered as they are taken, acknowledged in that order as they are stored.
        self._taken = 0
        self._next_ack = 0
        self._done: dict[int, list[Received]] = {}
        self._order_lock = threading.Lock()
        self.stored_batches = 0
        self.failures = 0
        self.client = self._client()

    # --- paho -------------------------------------------------------------------------------------

    def _client(self) -> paho.Client:
        settings = self.settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            client.username_pw_set(settings.mqtt_username, password)
        if self._tls:
            client.tls_set_context(ssl.create_default_context())
        low = max(1, round(settings.mqtt_backoff_min_seconds))
        client.reconnect_delay_set(low, max(low, round(settings.mqtt_backoff_max_seconds)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_seconds
        props.ReceiveMaximum = self.settings.mqtt_receive_maximum
        return props

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self._host, self._port, reason)
            return
        log.info(
            "MQTT connected to %s:%s (session %s)",
            self._host,
            self._port,
            "resumed" if flags.session_present else "new",
        )
        client.subscribe(self.settings.mqtt_topic, qos=1)
        self._connected.set()

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._ack_lock:
            self._generation += 1
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self._host, self._port, reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        tenant, device_id = topic_parts(msg.topic)
        item = Received(
            self._generation,
            msg.mid,
            msg.qos,
            Message(tenant, device_id, bytes(msg.payload), "mqtt", None, utcnow()),
            time.monotonic(),
        )
        with self._cond:
            self._queue.append(item)
            if len(self._queue) == 1 or len(self._queue) >= self.settings.mqtt_batch_size:
                self._cond.notify()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying while the broker is away) and start the store threads."""
        self.client.connect_async(
            self._host, self._port, keepalive=30, clean_start=False, properties=self._connect_properties()
        )
        self.client.loop_start()
        for number in range(self.settings.mqtt_store_threads):
            thread = threading.Thread(
                target=self._store_loop, name=f"citybrain-mqtt-store-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the worker is connected and subscribed (for tests and benchmarks)."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches being stored (their acknowledgements go out), then disconnect.

        Messages still queued are not acknowledged: the broker sends them again at the next start.
        """
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def pending(self) -> int:
        """Messages received and not yet taken into a batch."""
        return len(self._queue)

    # --- store threads ----------------------------------------------------------------------------

    def _take(self) -> tuple[int, list[Received]]:
        """The next batch (numbered): waits for a first message, then up to batch_ms for more."""
        size, wait = self.settings.mqtt_batch_size, self.settings.mqtt_batch_ms / 1000
        with self._cond:
            while not self._queue:
                if self._stopping.is_set():
                    return -1, []
                self._cond.wait(0.5)
            deadline = self._queue[0].arrived + wait
            while len(self._queue) < size and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            number = self._taken
            self._taken += 1
            if self._queue:
                self._cond.notify()
            return number, batch

    def _store_loop(self) -> None:
        while True:
            number, batch = self._take()
            if number < 0:
                return
            if self._store_batch(batch):
                self._acknowledge(number, batch)
            else:
                return  # stopping while the database is away: the broker keeps the messages

    def _store_batch(self, batch: Sequence[Received]) -> bool:
        """Store a batch, retrying with back-off until it is stored (True) or the worker stops (False)."""
        messages = [item.message for item in batch]
        delay = self.settings.mqtt_backoff_min_seconds
        while True:
            try:
                self._store(messages)
                self.stored_batches += 1
                return True
            except (DBAPIError, OSError) as exc:
                self.failures += 1
                log.warning(
                    "storing %d MQTT messages failed (%s: %s); retrying in %.1f s",
                    len(messages),
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                    delay,
                )
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, self.settings.mqtt_backoff_max_seconds)
            except Exception:
                # Not the database: something in these messages trips the pipeline. Store them one by
                # one, so the others go through and only the culprit is set aside as a rejection.
                log.exception("storing %d MQTT messages failed; storing them one by one", len(messages))
                return self._store_each(messages)

    def _store_each(self, messages: Sequence[Message]) -> bool:
        """Store messages singly; one the pipeline cannot take is recorded as a rejected message."""
        from citybrain.apps.iot.services import reject_messages

        for message in messages:
            while True:
                try:
                    self._store([message])
                    break
                except (DBAPIError, OSError):
                    if self._stopping.wait(self.settings.mqtt_backoff_max_seconds):
                        return False
                except Exception as exc:
                    log.exception(
                        "a message of device %s cannot be stored; it is set aside", message.device_id
                    )
                    try:
                        detail = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                        reject_messages(
                            self.ctx, [message], "internal_error", N_("cannot be processed: {error}"), detail
                        )
                        break
                    except Exception:
                        if self._stopping.wait(self.settings.mqtt_backoff_max_seconds):
                            return False
        self.stored_batches += 1
        return True

    def _acknowledge(self, number: int, batch: list[Received]) -> None:
        """Acknowledge stored batches in the order they were taken (this one, and any it held back)."""
        with self._order_lock:
            self._done[number] = batch
            while self._next_ack in self._done:
                ready = self._done.pop(self._next_ack)
                self._next_ack += 1
                with self._ack_lock:
                    generation = self._generation
                    for item in ready:
                        # one that arrived over an earlier connection is being resent by the broker
                        if item.generation == generation and item.qos > 0:
                            self.client.ack(item.mid, item.qos)
