"""The service's settings: one class, read from arguments and ``DRIFTWISE_*`` variables.

Every field can come from the environment (``DRIFTWISE_PORT=9000``,
``DRIFTWISE_BOOTSTRAP_SERVERS=127.0.0.1:9092``); explicit arguments win. Unsafe
values are refused here, once, instead of failing later in a request: a public
bind address needs ``allow_public_bind`` *and* an admin token, limits must be
positive, topic names must be legal Kafka names.

>>> s = Settings(registry="/tmp/reg", name="digits", port=9000)
>>> s.host, s.port, s.max_batch
('127.0.0.1', 9000, 64)
>>> try:
...     Settings(registry="/tmp/reg", name="digits", host="0.0.0.0")
... except ValueError as exc:
...     print("refused:", "allow_public_bind" in str(exc))
refused: True
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftwise.drift.loop_config import LoopConfig

_LOOP = LoopConfig()  # the loop's defaults are the service's: what the benchmarks measure is what users get

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SERVER = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def _default_torch_threads() -> int:
    """Half the cores, at most 4: the event loop (and Kafka) need the rest."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class Settings(BaseSettings):
    """Everything ``driftwise serve`` can be told; see the module docstring."""

    model_config = SettingsConfigDict(env_prefix="DRIFTWISE_", extra="ignore", frozen=True, hide_input_in_errors=True)

    # What to serve, and where.
    registry: Path
    name: str
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    allow_public_bind: bool = False
    admin_token: SecretStr | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(default_factory=_default_torch_threads, ge=1, le=256)
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description="DRIFTWISE_LOG_LEVEL: what the service says of its own decisions (drift confirmed, interims and "
                    "candidates served or refused and why, checks, elections), with a time and the deciding module")
    workers: int = Field(
        1, ge=1, le=64,
        description="DRIFTWISE_WORKERS: HTTP server processes on the one port; each is a replica (its share of the "
                    "stream, the election, the control topic), so more than one needs bootstrap servers, or no_adapt")

    # HTTP limits and micro-batching.
    max_instances: int = Field(1024, ge=1, le=1_000_000)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_batch: int = Field(64, ge=1, le=65536)
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0)

    registry_keep: int = Field(100, ge=0, description=(
        "DRIFTWISE_REGISTRY_KEEP: versions the registry keeps after each publication: the newest ones, plus the served one, its ancestors "
        "and every labeled original, which always stay (`driftwise.models.registry.Registry.prune`); 0 keeps all"))

    # Kafka.
    bootstrap_servers: str | None = None
    group_id: str = "driftwise"
    events_topic: str = "driftwise.events"
    predictions_topic: str = "driftwise.predictions"
    dlq_topic: str = "driftwise.events.dlq"
    labels_topic: str = "driftwise.labels"
    models_topic: str = "driftwise.models"
    adapter_topic: str = "driftwise.adapter"
    observations_topic: str = "driftwise.observations"
    role: Literal["auto", "replica"] = Field(
        "auto",
        description="DRIFTWISE_ROLE: with bootstrap servers, 'auto' stands for the adapter role, elected through "
                    "Kafka (one replica at a time watches the whole stream and adapts; the others predict and send "
                    "their batches to it on the observations topic); 'replica' only predicts and never adapts. "
                    "Without bootstrap servers the process is always its own adapter")

    # Drift and adaptation (read by the adaptation controller; what is not here keeps the validated
    # default of `driftwise.drift.loop.LoopConfig`).
    no_adapt: bool = False
    prewarm_adapter: bool = Field(
        True,
        description="DRIFTWISE_PREWARM_ADAPTER: keep the next adaptation's process started ahead, so it does not "
                    "wait about 3 s for Python and torch to start (costs about 0.3 GB of memory while it waits)")
    confidence_threshold: float = Field(
        _LOOP.threshold, gt=0.0, le=1.0,
        description="DRIFTWISE_CONFIDENCE_THRESHOLD: calibrated confidence a prediction needs to become a "
                    "pseudo-label (chosen on development shifts: bench/results/thresholds.md)")
    cooldown_seconds: float = Field(_LOOP.cooldown_seconds, ge=0.0)
    min_pseudo_labels: int = Field(_LOOP.min_pseudo_labels, ge=0)
    anchor_max_drop: float = Field(0.01, ge=0.0, le=1.0)
    rollback_window: int = Field(_LOOP.rollback_window, ge=1)
    adaptation_window: int = Field(
        _LOOP.window, ge=64, le=1024,
        description="DRIFTWISE_ADAPTATION_WINDOW: inputs that must arrive after drift is confirmed before adapting; "
                    "the candidate is adapted on the latest this many")
    normalize_after: int = Field(
        _LOOP.normalize_after, ge=0, le=1024,
        description="DRIFTWISE_NORMALIZE_AFTER: inputs after a confirmed drift before the served weights, with "
                    "BatchNorm re-estimated on the latest inputs, serve until the self-trained candidate is ready "
                    "(0: never)")
    refine_after: int = Field(
        _LOOP.refine_after, ge=0, le=1024,
        description="DRIFTWISE_REFINE_AFTER: once a drift's candidate is promoted and this many inputs of the new "
                    "domain have been seen since the drift was confirmed, the base is adapted again on all of them "
                    "and replaces it if it passes the guardrails (0: never; at most the 1024 recent inputs kept)")
    holdout_fraction: float = Field(
        _LOOP.holdout_fraction, ge=0.0, le=1.0,
        description="DRIFTWISE_HOLDOUT_FRACTION: share of the buffer's pseudo-labels kept out of training, so the "
                    "agreement guardrail is measured on labels the candidate never saw (1.0, as validated: the "
                    "adapter labels the window itself)")

    @field_validator("name")
    @classmethod
    def _name_is_a_directory_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("group_id", "events_topic", "predictions_topic", "dlq_topic", "labels_topic", "models_topic",
                     "adapter_topic", "observations_topic")
    @classmethod
    def _legal_kafka_name(cls, value: str) -> str:
        if not _TOPIC.match(value) or value in (".", ".."):
            raise ValueError("must be 1-249 of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        servers = [s.strip() for s in value.split(",")]
        for server in servers:
            if not _SERVER.match(server) or not 0 < int(server.rsplit(":", 1)[1]) < 65536:
                raise ValueError(f"expected HOST:PORT[,HOST:PORT...], got {server!r}")
        return ",".join(servers)

    @field_validator("admin_token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _bind_safely(self) -> "Settings":
        if not _is_loopback(self.host):
            if not self.allow_public_bind:
                raise ValueError(
                    f"host {self.host!r} is not a loopback address; set allow_public_bind=true to expose the service"
                )
            if self.admin_token is None:
                raise ValueError("a public bind needs an admin_token (DRIFTWISE_ADMIN_TOKEN or --admin-token, "
                                 "16+ characters), or no one could administer the service")
        return self

    @model_validator(mode="after")
    def _one_adapter_among_workers(self) -> "Settings":
        if self.workers > 1 and not self.bootstrap_servers and not self.no_adapt:
            raise ValueError(f"workers={self.workers} needs bootstrap_servers, through which the workers elect one "
                             "adapter (or no_adapt); without a broker each worker would adapt on its own")
        return self

    def to_env(self) -> dict[str, str]:
        """These settings as ``DRIFTWISE_*`` variables: what a worker process reads back into the same settings.

        >>> s = Settings(registry="/tmp/reg", name="digits", port=9000, bootstrap_servers="127.0.0.1:9092", workers=2)
        >>> env = s.to_env()
        >>> env["DRIFTWISE_PORT"], env["DRIFTWISE_WORKERS"], "DRIFTWISE_ADMIN_TOKEN" in env
        ('9000', '2', False)
        """
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"DRIFTWISE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once (the app's default when none are passed)."""
    return Settings()  # type: ignore[call-arg]  # registry and name come from DRIFTWISE_*
