"""The model registry on disk.

    MODEL_DIR/versions/<version>/manifest.json   what the version is, and checksums
    MODEL_DIR/versions/<version>/bundle.joblib   the ModelBundle (sklearn estimators and
                                                 the autoencoder's numpy weights)
    MODEL_DIR/versions/<version>/*.png           optional plots (`aegis thresholds`)
    MODEL_DIR/ACTIVE                             the version workers load
    MODEL_DIR/history.jsonl                      every activation: promotions, rollbacks
    MODEL_DIR/runs.jsonl                         every retraining run and its decision

The manifest records the version, the feature names in order, the per-detector feature
subsets, the training window, the holdout metrics (AUC / AP / CP@100 on the latest part
of the training window), the thresholds, the creation time, the code version, the library
versions the artifact was pickled with, and a SHA-256 per artifact file.

A version is refused (ModelRefused) when its manifest does not match the running code
(another manifest format or code version, features the code cannot compute or in another
order, another scikit-learn/numpy release than the one that pickled it) or an artifact is
missing or fails its checksum. Thresholds live in the manifest (`aegis thresholds` edits
them without touching the artifact), and `load` applies them over the bundle's.

The manifest's `config` block records the user's config the version was trained with
(models/lifecycle/model_config.py: features with kinds and windows, source columns, a
hash). `load(..., config=...)` refuses a version whose recorded config differs from the
given one, naming each difference; a version without the block (trained before configs
were recorded) serves only the Handbook preset, and only with its exact feature list.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import sklearn

from aegis_app.core import config as config_files
from aegis_app.core.config import Config, ConfigError
from models.detectors.bundle import ModelBundle
from models.lifecycle.model_config import config_differences, describe_config

MANIFEST_FORMAT = 2
# The model code's version: a bundle pickled by another one may not unpickle into the same
# objects. Bump it when a detector's or the bundle's pickled state changes.
CODE_VERSION = "0.2.0"
ARTIFACT = "bundle.joblib"


class ModelRefused(RuntimeError):
    """A model version that must not be loaded; the message says why."""


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


@dataclass
class Manifest:
    version: str
    created_at: str
    code_version: str
    feature_names: list[str]
    detectors: list[str]
    training_window: dict
    thresholds: dict[str, float]
    holdout_metrics: dict
    # File name -> SHA-256 of every artifact the version needs.
    artifacts: dict[str, str]
    detector_features: dict[str, list[str]] = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    # How the thresholds were chosen (`aegis thresholds` writes its summary here).
    threshold_selection: dict = field(default_factory=dict)
    # Per-feature and score histograms of the training data, the reference for drift.
    drift_reference: dict = field(default_factory=dict)
    # Where the version came from: `aegis train`, or a retraining run (its id, champion).
    lineage: dict = field(default_factory=dict)
    # The config the version was trained with (describe_config); empty before configs.
    config: dict = field(default_factory=dict)
    format: int = MANIFEST_FORMAT


def _versions_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "versions"


def version_dir(model_dir: Path, version: str) -> Path:
    return _versions_dir(model_dir) / version


def new_version_id(model_dir: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    version, n = f"v{stamp}", 1
    while (_versions_dir(model_dir) / version).exists():
        n += 1
        version = f"v{stamp}-{n}"
    return version


def save(
    bundle: ModelBundle,
    model_dir: Path,
    training_window: dict,
    holdout_metrics: dict | None = None,
    activate: bool = True,
    drift_reference: dict | None = None,
    lineage: dict | None = None,
    config: Config | None = None,
) -> Manifest:
    """Write a bundle as a new version (atomically) and, by default, make it active.

    holdout_metrics default to the ones fit_bundle measured (bundle.metadata), the
    config to the one fit_bundle was given (none recorded when neither is).
    """
    metadata = bundle.metadata or {}
    recorded_config = describe_config(config) if config is not None else metadata.get("config")
    if recorded_config and list(bundle.feature_names) != [
        f["name"] for f in recorded_config["features"]
    ]:
        raise ValueError(
            f"model {bundle.version}: its features are not the config's features in order"
        )
    target = _versions_dir(model_dir) / bundle.version
    if target.exists():
        raise ModelRefused(f"model version {bundle.version!r} already exists in {model_dir}")
    staging = target.with_name(f".{bundle.version}.tmp")
    staging.mkdir(parents=True, exist_ok=False)
    artifact = staging / ARTIFACT
    joblib.dump(bundle, artifact)
    manifest = Manifest(
        version=bundle.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        code_version=CODE_VERSION,
        feature_names=list(bundle.feature_names),
        detectors=list(bundle.detectors),
        training_window=training_window,
        thresholds={k: float(v) for k, v in bundle.thresholds.items()},
        holdout_metrics=_jsonable(
            holdout_metrics if holdout_metrics is not None else metadata.get("holdout_metrics", {})
        ),
        artifacts={ARTIFACT: _sha256(artifact)},
        detector_features={k: list(v) for k, v in bundle.detector_features.items()},
        ensemble=_jsonable(
            {
                "method": bundle.ensemble_method,
                "stacker": metadata.get("stacker"),
                "holdout": metadata.get("holdout"),
                "thresholds_rule": metadata.get("thresholds_rule"),
            }
        ),
        libraries=library_versions(),
        drift_reference=_jsonable(drift_reference or {}),
        lineage=_jsonable(lineage or {"source": "aegis train"}),
        config=_jsonable(recorded_config or {}),
    )
    _write_json(staging / "manifest.json", asdict(manifest))
    staging.rename(target)
    if activate:
        activate_version(model_dir, bundle.version, reason="trained")
    return manifest


def activate_version(model_dir: Path, version: str, reason: str, **details: object) -> dict:
    """Make `version` active and append the change to history.jsonl; returns the entry.

    Workers learn of it from the model-updates topic (aegis_app.kafka.model_updates) or, at the
    latest, when they next read ACTIVE.
    """
    previous = active_version(model_dir)
    set_active(model_dir, version)
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": version,
        "previous": previous,
        "reason": reason,
        **_jsonable(dict(details)),
    }
    _append_jsonl(Path(model_dir) / "history.jsonl", entry)
    return entry


def activation_history(model_dir: Path) -> list[dict]:
    """Every activation, oldest first."""
    return _read_jsonl(Path(model_dir) / "history.jsonl")


def rollback_target(model_dir: Path) -> str | None:
    """The version that was active before the current one (None if there is none)."""
    current = active_version(model_dir)
    for entry in reversed(activation_history(model_dir)):
        if entry.get("version") == current and entry.get("previous") not in (None, current):
            return entry["previous"]
    return None


def record_run(model_dir: Path, run: dict) -> None:
    """Append a retraining run (metrics of champion and challengers, the decision)."""
    _append_jsonl(Path(model_dir) / "runs.jsonl", _jsonable(run))


def list_runs(model_dir: Path) -> list[dict]:
    return _read_jsonl(Path(model_dir) / "runs.jsonl")


def _append_jsonl(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        # After a torn last line (crash mid-append) start a fresh line, not a longer torn one.
        torn = False
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        handle.seek(0, os.SEEK_END)
        line = json.dumps(entry, allow_nan=False) + "\n"
        handle.write((("\n" if torn else "") + line).encode())


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash mid-append
    return entries


def set_active(model_dir: Path, version: str) -> None:
    if not (_versions_dir(model_dir) / version / "manifest.json").exists():
        raise ModelRefused(f"no model version {version!r} in {model_dir}")
    pointer = Path(model_dir) / "ACTIVE"
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(version)
    os.replace(tmp, pointer)  # atomic: readers see the old or the new version, never half


def active_version(model_dir: Path) -> str | None:
    pointer = Path(model_dir) / "ACTIVE"
    return pointer.read_text().strip() if pointer.exists() else None


def list_versions(model_dir: Path) -> list[Manifest]:
    """Manifests of the versions this code can read (others are skipped)."""
    root = _versions_dir(model_dir)
    if not root.exists():
        return []
    manifests = []
    for path in sorted(root.glob("*/manifest.json")):
        try:
            manifests.append(read_manifest(path.parent))
        except ModelRefused:
            continue
    return manifests


def read_manifest(version_dir: Path) -> Manifest:
    """The manifest of a version directory; refused if unreadable or another format."""
    try:
        data = json.loads((Path(version_dir) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelRefused(f"{Path(version_dir).name}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ModelRefused(f"{Path(version_dir).name}: manifest is not a JSON object")
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelRefused(
            f"{Path(version_dir).name}: manifest format {data.get('format')!r}, this code "
            f"reads format {MANIFEST_FORMAT} (retrain with `aegis train`)"
        )
    known = {f.name for f in fields(Manifest)}
    try:
        return Manifest(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:  # a required field is missing
        raise ModelRefused(f"{Path(version_dir).name}: incomplete manifest ({exc})") from None


def check_manifest(manifest: Manifest) -> None:
    """Refuse a manifest the running code cannot serve (ModelRefused says why)."""
    version = manifest.version
    if manifest.code_version != CODE_VERSION:
        raise ModelRefused(
            f"{version}: built by model code {manifest.code_version}, this is {CODE_VERSION}"
        )
    if manifest.config:
        # The recorded config vouches for the features (load(config=...) compares it).
        declared = [f.get("name") for f in manifest.config.get("features", [])]
        if declared != manifest.feature_names:
            raise ModelRefused(f"{version}: feature list and recorded config disagree")
    else:
        # Trained before configs were recorded: the Handbook preset's features only.
        handbook = _default_preset(version).feature_names
        unknown = [name for name in manifest.feature_names if name not in handbook]
        if unknown:
            raise ModelRefused(f"{version}: features this code cannot compute: {unknown}")
    for name, subset in manifest.detector_features.items():
        missing = [f for f in subset if f not in manifest.feature_names]
        if missing:
            raise ModelRefused(f"{version}: {name} reads features not in the manifest: {missing}")
    running = library_versions()
    for lib in ("scikit-learn", "numpy"):
        built = manifest.libraries.get(lib)
        if built is None or _minor(built) != _minor(running[lib]):
            raise ModelRefused(
                f"{version}: pickled with {lib} {built}, running {running[lib]} "
                "(retrain with this release)"
            )
    if ARTIFACT not in manifest.artifacts:
        raise ModelRefused(f"{version}: manifest lists no {ARTIFACT}")
    bad = [k for k, v in manifest.thresholds.items() if not isinstance(v, int | float)]
    if bad or not {"review", "block"} <= set(manifest.thresholds):
        raise ModelRefused(f"{version}: thresholds must give numbers for review and block")


def check_config(manifest: Manifest, config: Config) -> None:
    """Refuse a version trained with another config than `config` (ModelRefused names
    every difference)."""
    version = manifest.version
    if manifest.config:
        differences = config_differences(manifest.config, config)
        if differences:
            raise ModelRefused(f"{version}: trained with another config: {_listed(differences)}")
        return
    # Trained before configs were recorded: the Handbook's features, nothing else.
    handbook = _default_preset(version)
    differences = config_differences(describe_config(handbook), config)
    if differences:
        raise ModelRefused(
            f"{version}: records no config (trained before configs were recorded), so it "
            f"serves the Handbook preset only; this config differs from it: "
            f"{_listed(differences)}"
        )
    if manifest.feature_names != list(config.feature_names):
        raise ModelRefused(
            f"{version}: records no config and its features {manifest.feature_names} are not "
            f"the Handbook preset's {list(config.feature_names)}"
        )


def _default_preset(version: str) -> Config:
    """The default preset (configs/handbook.toml), which a version recording no config was
    trained with."""
    try:
        return config_files.load(config_files.resolve(None))
    except ConfigError as exc:
        raise ModelRefused(f"{version}: records no config, and {exc}") from None


def _listed(differences: list[str], shown: int = 6) -> str:
    """The first differences, and how many more: a whole other config would fill a screen."""
    more = len(differences) - shown
    return "; ".join(differences[:shown]) + (f"; and {more} more" if more > 0 else "")


def load(model_dir: Path, version: str | None = None, config: Config | None = None) -> ModelBundle:
    """Load a version (default: the active one), refusing any mismatch or corruption, and,
    given the running `config`, a version trained with another one (see check_config)."""
    version = version or active_version(model_dir)
    if version is None:
        raise ModelRefused(f"no active model in {model_dir}; run `aegis train` first")
    folder = _versions_dir(model_dir) / version
    if not folder.is_dir():
        raise ModelRefused(f"no model version {version!r} in {model_dir}")
    manifest = read_manifest(folder)
    if manifest.version != version:
        raise ModelRefused(f"{version}: manifest names version {manifest.version!r}")
    check_manifest(manifest)
    if config is not None:
        check_config(manifest, config)
    for name, digest in manifest.artifacts.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            raise ModelRefused(f"{version}: artifact {name} missing or checksum mismatch (corrupt)")
    try:
        bundle = joblib.load(folder / ARTIFACT)
    except Exception as exc:  # noqa: BLE001 - a bad pickle can raise nearly anything
        raise ModelRefused(f"{version}: artifact does not load ({exc})") from None
    if not isinstance(bundle, ModelBundle):
        raise ModelRefused(f"{version}: artifact is a {type(bundle).__name__}, not a ModelBundle")
    if list(bundle.feature_names) != manifest.feature_names:
        raise ModelRefused(f"{version}: artifact and manifest disagree on feature order")
    if sorted(bundle.detectors) != sorted(manifest.detectors):
        raise ModelRefused(f"{version}: artifact and manifest disagree on detectors")
    if bundle.version != version:
        raise ModelRefused(f"{version}: artifact is version {bundle.version!r}")
    # The manifest is the source of truth for thresholds (`aegis thresholds` edits it).
    bundle.thresholds = {k: float(v) for k, v in manifest.thresholds.items()}
    return bundle


def update_thresholds(
    model_dir: Path,
    version: str | None,
    thresholds: dict[str, float],
    selection: dict | None = None,
) -> Manifest:
    """Replace a version's thresholds in its manifest (atomically); artifacts untouched.

    Workers pick the change up when they next load that version.
    """
    version = version or active_version(model_dir)
    if version is None:
        raise ModelRefused(f"no active model in {model_dir}")
    folder = _versions_dir(model_dir) / version
    manifest = read_manifest(folder)
    if not {"review", "block"} <= set(thresholds):
        raise ValueError("thresholds need review and block")
    manifest.thresholds = {k: float(v) for k, v in thresholds.items()}
    if selection is not None:
        manifest.threshold_selection = _jsonable(selection)
    _write_json(folder / "manifest.json", asdict(manifest))
    return manifest


def _minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(tmp, path)


def _jsonable(value):
    """Plain JSON types (numpy scalars and arrays converted, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not np.isfinite(value) else float(value)
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
