"""The control topic: announcing model versions and following the announcements.

``driftwise.models`` is compacted and keyed by model name, so it always holds
the latest version per name. Every replica reads it whole, with no consumer
group (each one must see every announcement), and swaps when told; that is how
N replicas end up serving the same version.

The adapter's announcements carry its election epoch (`driftwise.service.election`):
once a follower has seen an epoch, announcements from an older one (a deposed
adapter that has not noticed yet) are ignored. An operator's announcement
(``POST /models/{version}/activate``) carries none and is always followed.

>>> decode_announcement(encode_announcement("digits", 3))
Announcement(name='digits', version=3, epoch=None)
>>> decode_announcement(encode_announcement("digits", 4, epoch=17)).epoch
17
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftwise.service.reconnecting import ReconnectingThread
from driftwise.service.topics import MODELS, ensure_topics

log = logging.getLogger(__name__)

OnAnnounce = Callable[[str, int], None]


class Announcement(NamedTuple):
    name: str
    version: int
    epoch: int | None  # the announcing adapter's election epoch; None from an operator


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def encode_announcement(name: str, version: int, *, epoch: int | None = None) -> bytes:
    record: dict[str, Any] = {"name": name, "version": int(version)}
    if epoch is not None:
        record["epoch"] = int(epoch)
    return json.dumps(record).encode()


def decode_announcement(value: bytes | None) -> Announcement:
    """The announcement in a control record; ``ValueError`` when it is not one."""
    try:
        obj = json.loads(value or b"")
        name, version, epoch = obj["name"], obj["version"], obj.get("epoch")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a model announcement: {value!r:.80}") from exc
    if not isinstance(name, str) or not name or not _is_int(version) or not (epoch is None or _is_int(epoch)):
        raise ValueError(f"not a model announcement: {value!r:.80}")
    return Announcement(name, version, epoch)


class ModelAnnouncer:
    """Publishes announcements on one control topic through one producer, kept between them.

    The adapter announces every version it serves, interims included, several a minute while a drift is
    answered; a producer made for each (and the topic checked each time) cost about 0.13 s an announcement on
    an idle machine against 0.005 s on a kept one, and ran while the controller held its swap lock, so the next
    model waited behind it. A send that fails drops the producer: the next announcement makes a new one.

    >>> announcer = ModelAnnouncer("127.0.0.1:9", "driftwise.models")
    >>> announcer.close()  # nothing was sent, nothing to close
    """

    def __init__(self, bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> None:
        self.bootstrap, self.topic, self.timeout_s = bootstrap, topic, timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def announce(self, name: str, version: int, *, epoch: int | None = None) -> None:
        """Publish ``name`` -> ``version`` and wait until the broker has it."""
        if not name:
            raise ValueError("model name must be non-empty")
        value = encode_announcement(name, version, epoch=epoch)
        with self._lock:
            if self._producer is None:
                ensure_topics(self.bootstrap, [self.topic], partitions=1, compacted=[self.topic],
                              timeout_s=self.timeout_s)
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            try:
                self._producer.send(self.topic, key=name.encode(), value=value).get(timeout=self.timeout_s)
            except Exception:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)


def announce_model(bootstrap: str, topic: str, name: str, version: int, *, epoch: int | None = None,
                   timeout_s: float = 30.0) -> None:
    """Publish ``name`` -> ``version`` on the control topic and wait until the broker has it (once: a producer made
    and closed for it; see `ModelAnnouncer` to announce many)."""
    announcer = ModelAnnouncer(bootstrap, topic, timeout_s=timeout_s)
    try:
        announcer.announce(name, version, epoch=epoch)
    finally:
        announcer.close()


class ModelFollower(ReconnectingThread):
    """Calls ``on_announce(name, version)`` for every announcement on the control topic, in a background thread.

    On start it reads the topic from the beginning and reports only the latest
    version per name (the catch-up); after that, each new announcement. With
    ``name`` set, announcements for other models are ignored. Errors from the
    callback are logged and the follower goes on.
    """

    thread_name = "model-follower"
    what = "following the control topic"

    def __init__(self, bootstrap: str, on_announce: OnAnnounce, *, topic: str = MODELS, name: str | None = None,
                 poll_timeout_ms: int = 500) -> None:
        if not bootstrap:
            raise ValueError("bootstrap servers are required (HOST:PORT)")
        if poll_timeout_ms < 0:
            raise ValueError(f"poll_timeout_ms must be >= 0, got {poll_timeout_ms}")
        super().__init__()
        self.bootstrap = bootstrap
        self.on_announce = on_announce
        self.topic = topic
        self.name = name
        self.poll_timeout_ms = poll_timeout_ms
        self.announcements = 0
        self.fenced = 0  # announcements ignored for an epoch older than one already seen
        self._epochs: dict[str, int] = {}
        self.caught_up = threading.Event()

    def _connect(self) -> KafkaConsumer:
        ensure_topics(self.bootstrap, [self.topic], partitions=1, compacted=[self.topic])
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        try:
            partitions = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic))]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            self._catch_up(consumer, partitions)
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    def _work(self, consumer: KafkaConsumer) -> None:
        self._deliver(self._latest(consumer.poll(timeout_ms=self.poll_timeout_ms)))

    def _close(self, consumer: KafkaConsumer) -> None:
        consumer.close(autocommit=False)

    def _catch_up(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Read up to the end offsets seen at start; deliver the latest version per name once."""
        end = consumer.end_offsets(partitions)
        latest: dict[str, int] = {}
        while not self._stopping.is_set() and any(consumer.position(tp) < end[tp] for tp in partitions):
            latest.update(self._latest(consumer.poll(timeout_ms=self.poll_timeout_ms)))
        self._deliver(latest)
        self.caught_up.set()

    def _latest(self, polled: dict[Any, list[Any]]) -> dict[str, int]:
        latest: dict[str, int] = {}
        for records in polled.values():
            for r in records:
                try:
                    name, version, epoch = decode_announcement(r.value)
                except ValueError as exc:
                    log.warning("skipping control record at %s:%d: %s", r.partition, r.offset, exc)
                    continue
                if self.name is not None and name != self.name:
                    continue
                if epoch is not None and epoch < self._epochs.get(name, -1):
                    self.fenced += 1
                    log.warning("ignoring %s v%s from a deposed adapter (epoch %d < %d)", name, version, epoch,
                                self._epochs[name])
                    continue
                if epoch is not None:
                    self._epochs[name] = epoch
                latest[name] = version
        return latest

    def _deliver(self, latest: dict[str, int]) -> None:
        for name, version in latest.items():
            self.announcements += 1
            try:
                self.on_announce(name, version)
            except Exception:
                log.exception("on_announce(%r, %r) failed", name, version)
