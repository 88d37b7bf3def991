"""The REST API (`aegis api`): synchronous scoring with the stream's own feature state and
models, alerts and labels from the result store, health, readiness and metrics."""

from aegis_app.serving.api.app import create_app
from aegis_app.serving.api.config import ApiSettings

__all__ = ["ApiSettings", "create_app"]
