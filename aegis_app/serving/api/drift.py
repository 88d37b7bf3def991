"""Drift of stored decisions against the active model's training data, per event-time window.

The API's glue between the result store, the model registry and models.lifecycle.drift: windows of
`hours` end at the latest stored tx_datetime (event time, so a replay of historical data is
measured in its own time, not in wall-clock time), newest window last. Feature PSI uses
every decision in a window; score PSI only the decisions the active model made, since the
reference holds that model's training scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aegis_app.core.records import DATETIME_FORMAT
from aegis_app.serving.api.metrics import Metrics
from aegis_app.serving.store.repository import Store
from models.lifecycle import registry
from models.lifecycle.drift import DEFAULT_THRESHOLD, PSI_MODERATE, drift_report

log = logging.getLogger(__name__)
# Decisions read per window (newest first): enough for stable bin shares, bounded cost.
SAMPLE_PER_WINDOW = 5000


class DriftUnavailable(RuntimeError):
    """No active model, or a model without a drift reference; the message says what to do."""


@dataclass(frozen=True)
class Reference:
    version: str
    profile: dict[str, Any]


def active_reference(model_dir: Path) -> Reference:
    """The active version's drift reference, or DriftUnavailable."""
    version = registry.active_version(model_dir)
    if version is None:
        raise DriftUnavailable(f"no active model in {model_dir}: run `aegis train`")
    try:
        manifest = registry.read_manifest(registry.version_dir(model_dir, version))
    except registry.ModelRefused as exc:
        raise DriftUnavailable(f"active model unreadable: {exc}") from None
    profile = manifest.drift_reference or {}
    if not profile.get("features") or not profile.get("score"):
        raise DriftUnavailable(
            f"model {version} has no drift reference (trained before drift monitoring): "
            "retrain with `aegis train` to monitor drift"
        )
    return Reference(version, profile)


def _parse(text: str) -> datetime:
    """A stored tx_datetime as a naive UTC datetime."""
    try:
        return datetime.strptime(text.strip(), DATETIME_FORMAT)
    except ValueError:
        moment = datetime.fromisoformat(text.strip())
        return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _format(moment: datetime) -> str:
    # isoformat pads the year to four digits, so bounds keep text order = time order.
    return moment.isoformat(sep=" ", timespec="seconds")


def _bounds(latest: datetime, hours: int, windows: int) -> list[tuple[datetime | None, datetime]]:
    """(start, end) of each window, oldest first; the newest ends just after `latest`.

    A start before year 1 becomes None (unbounded) and is the last window produced.
    """
    try:
        end = latest + timedelta(seconds=1)  # whole seconds: the end is exclusive
    except OverflowError:  # year 9999; the newest window is read without an end anyway
        end = latest
    step = timedelta(hours=hours)
    out: list[tuple[datetime | None, datetime]] = []
    w_end = end
    for _ in range(windows):
        try:
            w_start: datetime | None = w_end - step
        except OverflowError:
            w_start = None
        out.append((w_start, w_end))
        if w_start is None:
            break
        w_end = w_start
    return out[::-1]


def compute(
    store: Store,
    reference: Reference,
    hours: int = 24,
    windows: int = 7,
    threshold: float = DEFAULT_THRESHOLD,
    sample: int = SAMPLE_PER_WINDOW,
) -> dict[str, Any]:
    """The /v1/drift body: one report per window, oldest first."""
    latest = store.latest_tx_datetime()
    reports: list[dict[str, Any]] = []
    if latest is not None:
        bounds = _bounds(_parse(latest), hours, windows)
        for i, (start, end) in enumerate(bounds):
            newest = i == len(bounds) - 1
            rows = store.decisions_between(
                _format(start) if start is not None else None,
                None if newest else _format(end),  # nothing is stored past the latest
                sample,
            )
            scores = [r["score"] for r in rows if r["model_version"] == reference.version]
            report = drift_report(
                reference.profile, [r["features"] for r in rows], scores, threshold
            )
            reports.append(
                {
                    "start": _format(start) if start is not None else None,
                    "end": _format(end),
                    "sampled": len(rows) >= sample,
                    **report,
                }
            )
    return {
        "model_version": reference.version,
        "threshold": float(threshold),
        "moderate": PSI_MODERATE,
        "hours": hours,
        "latest_tx_datetime": latest,
        "reference_rows": int(reference.profile.get("n") or 0),
        "alert": bool(reports and reports[-1]["alert"]),
        "windows": reports,
    }


def clear_gauges(metrics: Metrics) -> None:
    """Nothing measured (no reference, no data): unknown, not 'no drift'."""
    metrics.drift_score_psi.set(float("nan"))
    metrics.drift_feature_psi.clear()
    metrics.drift_alert.set(0)
    metrics.drift_window_rows.set(0)


def set_gauges(metrics: Metrics, body: dict[str, Any]) -> None:
    """The aegis_drift_* gauges from a compute() body's latest window."""
    windows = body.get("windows") or []
    if not windows:
        clear_gauges(metrics)
        return
    latest = windows[-1]
    score = latest.get("score_psi")
    metrics.drift_score_psi.set(float("nan") if score is None else score)
    metrics.drift_feature_psi.clear()  # features of a previous model must not linger
    for name, value in (latest.get("feature_psi") or {}).items():
        metrics.drift_feature_psi.labels(feature=name).set(value)
    metrics.drift_alert.set(1 if latest.get("alert") else 0)
    metrics.drift_window_rows.set(latest.get("n") or 0)


def refresh_gauges(
    metrics: Metrics, store: Store, model_dir: Path, hours: int = 24
) -> dict[str, Any] | None:
    """Recompute the latest window and set the gauges; without a reference the gauges are
    cleared and None returned."""
    try:
        reference = active_reference(model_dir)
    except DriftUnavailable as exc:
        log.debug("drift gauges: %s", exc)
        clear_gauges(metrics)
        return None
    body = compute(store, reference, hours=hours, windows=1)
    set_gauges(metrics, body)
    return body
