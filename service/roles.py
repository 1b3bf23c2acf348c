"""Who does what among replicas: every one predicts, one at a time is the adapter.

With bootstrap servers, `driftwise serve` joins the adapter election
(`driftwise.service.election`) unless ``--role replica``. While it is not the
adapter its controller watches nothing and its batches go to the observations
topic (`driftwise.service.observations`); once elected it reads that topic from
then on and feeds every replica's batches, and its own, to its drift loop. The
adapter alone reads the feedback labels (`driftwise.service.feedback`): every
event any replica served since it took the role is in its memory, with the ids
the observations carry, so a label joins whichever replica served the event. A
single replica is elected on its own before it serves its first event, so one
`driftwise serve` still does everything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from driftwise.service.election import Election, replica_id
from driftwise.service.feedback import FeedbackConsumer
from driftwise.service.observations import ObservationFeed, ObservationPublisher
from driftwise.service.runtime import BatchPrediction
from driftwise.service.state import ServiceState

log = logging.getLogger(__name__)

ELECTION_WAIT_S = 5.0
"""At startup, how long a replica waits to learn whether it is the adapter before it serves: long enough for
a lone replica to be elected (well under a second on an idle broker, 3 s more on a broker left at Kafka's default
``group.initial.rebalance.delay.ms``), so its drift loop sees the stream from the first event."""


@dataclass
class Roles:
    """The parts of a replica's role: ``election`` and ``feed`` only when it stands for adapter, ``feedback`` while it is."""

    member: str
    publisher: ObservationPublisher
    election: Election | None = None
    feed: ObservationFeed | None = None
    feedback: FeedbackConsumer | None = None

    @property
    def is_adapter(self) -> bool:
        return self.election is not None and self.election.is_adapter

    def stop(self) -> None:
        """Leave the election first (the role moves on at once), then stop reading and sending."""
        for part in (self.election, self.feed, self.feedback, self.publisher):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - stop the rest
                log.exception("stopping %r failed", part)


def start_roles(state: ServiceState) -> Roles:
    """Send batches while not the adapter; stand for the role unless told to be a replica only."""
    s, controller = state.settings, state.controller
    assert s.bootstrap_servers is not None and controller is not None
    member = replica_id()
    metrics = state.metrics

    def is_adapter() -> bool:
        return bool(controller.leading)

    publisher = ObservationPublisher(s.bootstrap_servers, s.observations_topic, member=member, group=s.group_id,
                                     is_adapter=is_adapter)

    def publish(X: np.ndarray, prediction: BatchPrediction, source: str, ids: Sequence[str] | None) -> None:
        if publisher(X, prediction, source, ids):
            metrics.observations.labels("sent").inc()

    state.observers.append(publish)
    roles = Roles(member, publisher)
    if s.role == "replica":
        log.info("%s: predicting only (role replica); the elected adapter watches and adapts", member)
        return roles

    def observed(X: np.ndarray, prediction: BatchPrediction, ids: Sequence[str] | None) -> None:
        metrics.observations.labels("received").inc()
        if ids is not None:
            state.served.remember(ids, X, prediction.labels, prediction.confidence)
        if not state.notify(X, prediction, "replica", ids, wait=False):  # behind: its own traffic comes first
            metrics.observations.labels("dropped").inc()

    def elected(epoch: int | None) -> None:
        controller.take_lead(epoch)
        roles.feed.follow()  # type: ignore[union-attr]
        # One reader of the labels topic per deployment: its group gets them all.
        roles.feedback = FeedbackConsumer(state.served, controller.on_feedback, bootstrap=s.bootstrap_servers,
                                          topic=s.labels_topic, group_id=f"{s.group_id}.feedback").start()

    def deposed() -> None:
        roles.feed.pause()  # type: ignore[union-attr]
        feedback, roles.feedback = roles.feedback, None
        if feedback is not None:
            feedback.stop()
        controller.step_down()

    roles.feed = ObservationFeed(s.bootstrap_servers, s.observations_topic, observed, member=member,
                                 group=s.group_id).start()
    roles.election = Election(s.bootstrap_servers, s.adapter_topic, Election.group_for(s.group_id), member=member,
                              on_elected=elected, on_deposed=deposed).start()
    if not roles.election.wait_elected(ELECTION_WAIT_S):
        log.info("%s: another replica is the adapter (or the broker is slow to say): serving as a replica", member)
    return roles
