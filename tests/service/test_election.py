"""The adapter election on a real broker: one adapter at a time, kept while replicas come and go, replaced when it leaves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from driftwise.service.election import Election
from tests.kafka_support import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class Member:
    """One replica's election, recording what it was told."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str) -> None:
        self.events: list[tuple[str, int | None]] = []
        self.election = Election(bootstrap, topic, group, member=name,
                                 on_elected=lambda epoch: self.events.append(("elected", epoch)),
                                 on_deposed=lambda: self.events.append(("deposed", None)))

    @property
    def is_adapter(self) -> bool:
        return self.election.is_adapter


@pytest.fixture
def members(kafka_bootstrap: str) -> Iterator[Callable[[str], Member]]:
    topic, group = f"adapter-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    started: list[Member] = []

    def start(name: str) -> Member:
        member = Member(kafka_bootstrap, topic, group, name)
        member.election.start()
        started.append(member)
        return member

    yield start
    for member in started:
        member.election.stop()


def adapters(members: list[Member]) -> list[str]:
    return [m.election.member for m in members if m.is_adapter]


def test_exactly_one_member_is_the_adapter_and_a_joining_replica_does_not_take_the_role(
        members: Callable[[str], Member]) -> None:
    first = members("a")
    wait_for(lambda: first.is_adapter, 20, "the first member elected")
    others = [members("b"), members("c")]
    time.sleep(8)  # both have joined and the group has rebalanced (cooperatively) around them
    assert adapters([first, *others]) == ["a"]
    assert first.events == [("elected", first.election.epoch)], "the role never moved, not even for a moment"
    assert all(not m.events for m in others)


def test_when_the_adapter_leaves_another_member_takes_over_with_a_higher_epoch(
        members: Callable[[str], Member]) -> None:
    first, second = members("a"), members("b")
    wait_for(lambda: len(adapters([first, second])) == 1, 20, "one adapter")
    leader, follower = (first, second) if first.is_adapter else (second, first)
    old_epoch = leader.election.epoch
    leader.election.stop()
    assert leader.events[-1] == ("deposed", None)
    took = wait_for(lambda: follower.is_adapter, 15, "the other member elected")
    assert took < 15
    assert follower.election.epoch is not None and old_epoch is not None
    assert follower.election.epoch > old_epoch, "epochs only grow, so the old adapter's announcements can be fenced"
