"""Where the analyst page finds the API (AEGIS_API_URL, AEGIS_API_TOKEN, AEGIS_MODEL_DIR)
and what it calls a record's parts: the names of the config AEGIS_CONFIG names (the
default preset otherwise), the one `aegis --config FILE dashboard` passes on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aegis_app.core.settings import Settings
from dashboard.shaping import RecordNames

# Seconds between automatic refreshes of the alert queue and of the charts.
QUEUE_REFRESH_S = 5.0
CHARTS_REFRESH_S = 10.0


@dataclass(frozen=True)
class DashboardConfig:
    api_url: str
    api_token: str | None
    model_dir: Path


def load() -> DashboardConfig:
    settings = Settings.from_env()
    return DashboardConfig(
        api_url=settings.api_url or f"http://127.0.0.1:{settings.api_port}",
        api_token=settings.api_token or None,
        model_dir=Path(settings.model_dir),
    )


def record_names() -> RecordNames:
    """The config's names for the page; ConfigError (naming the key) if it is not usable."""
    return RecordNames.of(Settings.from_env().load_config())
