"""The Kafka topics driftwise uses, and creating them before anyone reads or writes.

Topics are created explicitly (not by broker auto-creation) so that partition
counts are chosen, the control topic is compacted, and a consumer group never
subscribes to a topic that does not exist yet.

>>> DEFAULT_TOPICS.compacted
('driftwise.models',)
>>> DEFAULT_TOPICS.all[:2]
('driftwise.events', 'driftwise.predictions')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EVENTS = "driftwise.events"
PREDICTIONS = "driftwise.predictions"
DLQ = "driftwise.events.dlq"
LABELS = "driftwise.labels"
MODELS = "driftwise.models"


@dataclass(frozen=True)
class Topics:
    """Topic names; every one is configurable, these are the defaults from DESIGN.md."""

    events: str = EVENTS
    predictions: str = PREDICTIONS
    dlq: str = DLQ
    labels: str = LABELS
    models: str = MODELS

    @property
    def all(self) -> tuple[str, ...]:
        return (self.events, self.predictions, self.dlq, self.labels, self.models)

    @property
    def compacted(self) -> tuple[str, ...]:
        """The control topic keeps only the latest announcement per model name."""
        return (self.models,)

    def with_suffix(self, suffix: str) -> "Topics":
        """The same layout with ``suffix`` appended to every name (tests, side-by-side runs)."""
        return Topics(*(f"{name}{suffix}" for name in self.all))


DEFAULT_TOPICS = Topics()


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int = 3, *, compacted: Iterable[str] = (),
                  replication_factor: int | None = None, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet and wait until each has a leader; return those created.

    ``compacted`` names (a subset or not of ``names``) get ``cleanup.policy=compact``.
    ``replication_factor=None`` uses the broker default (1 on a single node, 3 on the
    local 3-node cluster). Existing topics are left as they are.
    """
    names = list(dict.fromkeys(names))
    compacted = set(compacted)
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if replication_factor is not None and replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
    if not names:
        return []
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, for_code

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=int(timeout_s * 1000),
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        created: list[str] = []
        if missing:
            spec = {
                n: {
                    "num_partitions": partitions,
                    "replication_factor": replication_factor or -1,
                    "configs": {"cleanup.policy": "compact"} if n in compacted else {},
                }
                for n in missing
            }
            result = admin.create_topics(spec, timeout_ms=int(timeout_s * 1000), raise_errors=False)
            for topic in result["topics"]:
                error = for_code(topic["error_code"])
                if topic["error_code"] == 0:
                    created.append(topic["name"])
                elif error is not TopicAlreadyExistsError:  # lost a race with another creator: fine
                    raise RuntimeError(f"could not create topic {topic['name']!r}: {error.__name__}: "
                                       f"{topic.get('error_message')}")
        admin.wait_for_topics(names, timeout_ms=int(timeout_s * 1000))
        return created
    finally:
        admin.close()
