"""One router per concern; `driftwise.service.app` mounts them."""

from driftwise.service.routes import drift, health, models, predict

__all__ = ["drift", "health", "models", "predict"]
