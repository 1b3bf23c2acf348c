"""Shared test set-up: the Kafka fixtures, and one torch thread per test process.

On a loaded 2-core machine, tiny models run 5-40x slower with 2 torch threads
than with 1 (the threads fight each other and the broker); tests use small
models, so one thread is both faster and steadier.
"""

from collections.abc import Iterator

import pytest
import torch

pytest_plugins = ["tests.kafka_support"]


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
