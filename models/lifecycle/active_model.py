"""The registry's active model version, loaded and kept current: the one model loader of
the stream scorer (agents/scoring.py) and the API's scorer (aegis_app/serving/api).

`refresh()` re-reads ACTIVE and loads the version it names if it changed; a version the
registry refuses (wrong feature list, bad files) leaves the loaded one in place. It does
file I/O and unpickling: callers run it off their event loop, between two batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aegis_app.core.config import Config
from models.detectors.bundle import ModelBundle
from models.lifecycle import registry
from models.lifecycle.model_config import running_config

log = logging.getLogger(__name__)

UNCHANGED, LOADED, SWAPPED, REFUSED = "unchanged", "loaded", "swapped", "refused"


@dataclass(frozen=True)
class Refresh:
    """What one refresh did: UNCHANGED, LOADED (the first version), SWAPPED or REFUSED."""

    outcome: str
    previous: str | None = None
    version: str | None = None


class ActiveModel:
    """`config`: the features this process computes; a version trained with another config
    is refused, naming the difference (default: the config the process runs,
    Settings.load_config(): AEGIS_CONFIG, else the default preset)."""

    def __init__(self, model_dir: Path | str, config: Config | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.config = config if config is not None else running_config()
        self.bundle: ModelBundle | None = None
        self.loaded_at: str | None = None  # ISO time the current bundle was loaded
        self.last_error: str | None = None  # why no (newer) model is loaded, if so

    @property
    def version(self) -> str | None:
        return self.bundle.version if self.bundle is not None else None

    def refresh(self) -> Refresh:
        version = registry.active_version(self.model_dir)
        current = self.version
        if version is None or version == current:
            if version is None and self.bundle is None:
                self.last_error = f"no active model in {self.model_dir}"
            return Refresh(UNCHANGED, current, current)
        try:
            bundle = registry.load(self.model_dir, version, config=self.config)
        except registry.ModelRefused as exc:
            self.last_error = str(exc)
            log.error("model refused, keeping %s: %s", current or "none", exc)
            return Refresh(REFUSED, current, version)
        self.bundle = bundle
        self.loaded_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.last_error = None
        return Refresh(LOADED if current is None else SWAPPED, current, version)
