"""One router per concern; `service.app` mounts them."""

from service.routes import drift, health, models, predict

__all__ = ["drift", "health", "models", "predict"]
