"""Shared fixtures for the serving tests: a real registry with two tiny real CNNs, and real servers."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import uvicorn
from fastapi import FastAPI

from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig
from driftwise.models.registry import Registry
from driftwise.service.app import create_app
from driftwise.service.settings import Settings

with warnings.catch_warnings():  # starlette asks for "httpx2"; the httpx it supports is installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NAME = "digits"
SHAPE = (1, 8, 8)
ADMIN_TOKEN = "test-admin-token-0123456789"


def tiny_classifier(seed: int) -> Classifier:
    """A small real CNN; different seeds give different predictions."""
    torch.manual_seed(seed)
    return Classifier(ModelConfig(encoder="cnn", input_shape=SHAPE, num_classes=10, width=4, embed_dim=16)).eval()


def instances(n: int, seed: int = 0) -> list[list[float]]:
    """``n`` flat 64-pixel instances with digits-like values in [0, 16]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 16, size=(n, 64)).round(3).tolist()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """Version 1 current; version 2 published but not active."""
    reg = Registry(tmp_path / "registry")
    reg.publish(NAME, tiny_classifier(0), reason="pretrain")
    reg.publish(NAME, tiny_classifier(1), reason="adapt", parent=1, activate=False)
    return reg


@pytest.fixture
def make_settings(registry: Registry) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"registry": registry.root, "name": NAME, "torch_threads": 1, "device": "cpu"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as c:
        yield c


@contextmanager
def live_server(app: FastAPI, timeout: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", loop="uvloop", http="httptools", access_log=False,
                            timeout_graceful_shutdown=5, timeout_keep_alive=120)  # no idle-close races in tests
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
