"""Settings of the REST API, derived from the process Settings (aegis_app.core.settings):

    AEGIS_API_TOKEN        bearer token; no default secret
    AEGIS_API_OPEN_READS   1/true/yes: GET endpoints need no token
    AEGIS_WORKER_URL       worker web view, default http://127.0.0.1:{AEGIS_WEB_PORT}

Command-line options (`aegis api --token --open-reads --worker-url`) win over these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aegis_app.core.settings import Settings


@dataclass(frozen=True)
class ApiSettings:
    token: str | None = None
    open_reads: bool = False
    worker_url: str = "http://127.0.0.1:6066"
    # Seconds the API waits for the worker's state view before answering 503.
    worker_timeout_s: float = 2.0
    # Largest number of concurrent requests scored together in one model call.
    score_batch_size: int = 64

    @classmethod
    def from_env(cls, settings: Settings, **overrides: object) -> ApiSettings:
        values: dict[str, object] = {
            "token": settings.api_token,
            "open_reads": settings.api_open_reads,
            "worker_url": settings.worker_url or f"http://127.0.0.1:{settings.web_port}",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> ApiSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
