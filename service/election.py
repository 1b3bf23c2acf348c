"""Electing the one adapter among many replicas, with Kafka's own consumer groups.

Every replica that may adapt joins one consumer group on a topic with a single
partition. Kafka's group coordinator gives that partition to exactly one member
at a time: that member is the adapter. When it leaves (shutdown) the partition
moves at once; when it dies (kill -9, a lost machine) it moves once the group's
session timeout has passed without a heartbeat. The assignment is cooperative and
sticky, so replicas joining or leaving do not move the role. No consensus is
written here: the broker already runs one.

Each new adapter appends a record to the election topic on taking the role; the
record's offset is its **epoch**, which only grows. Announcements on the control
topic carry it, so a deposed adapter that has not noticed yet (a long pause, a
network split) cannot be followed once its successor has spoken
(`driftwise.service.control`).

>>> Election.group_for("driftwise")
'driftwise.adapter'
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from driftwise.service.reconnecting import ReconnectingThread
from driftwise.service.topics import ensure_topics

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 6000  # the broker's smallest allowed by default: a dead adapter is replaced in 6-10 s
POLL_TIMEOUT_MS = 500


def replica_id() -> str:
    """This process's name in logs, records and metrics: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Election(ReconnectingThread):
    """Calls ``on_elected(epoch)`` when this process becomes the adapter and ``on_deposed()`` when it stops being it.

    Both run in the election's thread, one at a time and in order. ``epoch`` is
    None when the election record could not be written (the role still holds;
    its announcements are then not fenced). Losing the broker is stepping down;
    the election rejoins when it answers.
    """

    thread_name = "adapter-election"
    what = "the adapter election"

    def __init__(self, bootstrap: str, topic: str, group_id: str, *, on_elected: Callable[[int | None], None],
                 on_deposed: Callable[[], None], member: str | None = None,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS) -> None:
        if not bootstrap:
            raise ValueError("bootstrap servers are required (HOST:PORT)")
        super().__init__()
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, group_id
        self.on_elected, self.on_deposed = on_elected, on_deposed
        self.member = member or replica_id()
        self.session_timeout_ms = session_timeout_ms
        self.is_adapter = False
        self.epoch: int | None = None
        self._elected_once = threading.Event()

    @staticmethod
    def group_for(group_id: str) -> str:
        """The election's consumer group for the service's ``group_id``: replicas of one deployment share it."""
        return f"{group_id}.adapter"

    def start(self) -> "Election":
        ensure_topics(self.bootstrap, [self.topic], partitions=1)
        return super().start()

    def wait_elected(self, timeout: float) -> bool:
        """Wait until this member has been elected once; False after ``timeout`` (another member holds the role)."""
        return self._elected_once.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Leave the group (the role moves to another replica at once) and stop."""
        return super().stop(timeout)

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, client_id=f"driftwise-election-{self.member}",
            enable_auto_commit=False, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 4,
            # Sticky and cooperative: a replica joining or leaving leaves the adapter where it is.
            partition_assignment_strategy=(CooperativeStickyAssignor,))
        try:
            consumer.subscribe([self.topic], listener=_Listener(self))
            consumer.partitions_for_topic(self.topic)  # see `StreamWorker._open`: one join, not two
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    def _work(self, consumer: KafkaConsumer) -> None:
        consumer.poll(timeout_ms=POLL_TIMEOUT_MS)  # keeps the membership; nothing is read

    def _close(self, consumer: KafkaConsumer) -> None:
        consumer.close(autocommit=False)

    def _disconnected(self) -> None:
        self._deposed()

    def _elected(self) -> None:
        if self.is_adapter:
            return
        self.epoch = self._claim()
        self.is_adapter = True
        log.info("%s is the adapter now (epoch %s)", self.member, self.epoch)
        try:
            self.on_elected(self.epoch)
        except Exception:  # noqa: BLE001 - the role is held; what failed to start says so itself
            log.exception("taking the adapter role failed")
        self._elected_once.set()  # after on_elected: who waits for it finds the role taken up

    def _deposed(self) -> None:
        if not self.is_adapter:
            return
        self.is_adapter = False
        log.info("%s is no longer the adapter", self.member)
        try:
            self.on_deposed()
        except Exception:  # noqa: BLE001
            log.exception("leaving the adapter role failed")

    def _claim(self) -> int | None:
        """Append this member's claim to the election topic; its offset is the new epoch."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        try:
            record = json.dumps({"adapter": self.member}).encode()
            return int(producer.send(self.topic, value=record, partition=0).get(timeout=10).offset)
        except Exception:  # noqa: BLE001 - adapting unfenced beats not adapting
            log.exception("could not write the election record: this adapter's announcements carry no epoch")
            return None
        finally:
            producer.close(timeout=5)


class _Listener(ConsumerRebalanceListener):
    """The single partition assigned means elected; revoked or lost means deposed."""

    def __init__(self, election: Election) -> None:
        self.election = election

    def on_partitions_revoked(self, revoked: Any) -> None:
        if any(tp.topic == self.election.topic for tp in revoked):
            self.election._deposed()

    def on_partitions_assigned(self, assigned: Any) -> None:
        if TopicPartition(self.election.topic, 0) in set(assigned):
            self.election._elected()

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)
