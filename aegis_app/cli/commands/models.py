"""Live model updates from the command line:

    aegis promote VERSION [--model-dir DIR] [--broker URL] [--reason TEXT]
    aegis rollback [--to VERSION] [--model-dir DIR] [--broker URL] [--reason TEXT]
    aegis models [--model-dir DIR] [--json] [--history N]

Promote and rollback make a version active in the registry (ACTIVE + history.jsonl) and
announce it on aegis.model-updates, so every worker switches between two batches, without
a restart. The ACTIVE change is what counts: if the broker cannot be reached the command
still succeeds, with a warning, and workers switch on their next poll of ACTIVE.
"""

from __future__ import annotations

import argparse
import json
import sys

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides
from aegis_app.core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promote", help="make a model version live on every worker")
    p.add_argument("version", help="a registered version (see `aegis models`)")
    _common(p)
    p.add_argument("--reason", default="promoted", help="recorded in the history")
    p.set_defaults(func=run_promote)

    p = sub.add_parser("rollback", help="return every worker to the previous model version")
    p.add_argument("--to", dest="to", help="this version instead of the previous one")
    _common(p)
    p.add_argument("--reason", default="rollback", help="recorded in the history")
    p.set_defaults(func=run_rollback)

    p = sub.add_parser("models", help="list model versions, the active one, and its history")
    p.add_argument("--model-dir", help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--history", type=int, default=10, help="latest activations to show")
    p.set_defaults(func=run_list)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--broker", help="Kafka URL for the announcement (AEGIS_KAFKA_BROKER)")
    add_kafka_options(p)


def _settings(args: argparse.Namespace) -> Settings:
    from aegis_app.kafka.clients import KafkaConnection

    conf = Settings.from_env(
        model_dir=args.model_dir, kafka_broker=args.broker, **kafka_overrides(args)
    )
    KafkaConnection.from_settings(conf)  # a bad TLS/SASL setting fails before ACTIVE changes
    return conf


def run_promote(args: argparse.Namespace) -> int:
    conf = _settings(args)
    return _activate(conf, args.version, args.reason, "promote")


def run_rollback(args: argparse.Namespace) -> int:
    from models.lifecycle import registry

    conf = _settings(args)
    target = args.to or registry.rollback_target(conf.model_dir)
    if target is None:
        current = registry.active_version(conf.model_dir)
        print(
            f"aegis rollback: error: no version to roll back to in {conf.model_dir} "
            f"(active: {current or 'none'}, and no earlier activation is recorded); "
            "name one with --to",
            file=sys.stderr,
        )
        return 1
    return _activate(conf, target, args.reason, "rollback")


def _activate(conf: Settings, version: str, reason: str, command: str) -> int:
    from aegis_app.kafka import model_updates
    from aegis_app.kafka.clients import KafkaConnection
    from models.lifecycle import registry

    current = registry.active_version(conf.model_dir)
    if version == current:
        print(f"aegis {command}: {version} is already active in {conf.model_dir}; nothing to do")
        return 0
    # Refuse here what the workers would refuse, before anything changes.
    try:
        registry.load(conf.model_dir, version)
    except registry.ModelRefused as exc:
        print(f"aegis {command}: error: {exc}; {current or 'none'} stays active", file=sys.stderr)
        return 1
    entry = registry.activate_version(conf.model_dir, version, reason=reason)
    announced = model_updates.announce_or_warn(
        KafkaConnection.from_settings(conf), entry, conf.model_dir, f"aegis {command}"
    )
    summary = {**entry, "model_dir": str(conf.model_dir), "announced": announced}
    print(json.dumps(summary))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from models.lifecycle import registry

    model_dir = Settings.from_env(model_dir=args.model_dir).model_dir
    active = registry.active_version(model_dir)
    versions = []
    for manifest in registry.list_versions(model_dir):
        info = asdict(manifest)
        versions.append(
            {
                "version": manifest.version,
                "active": manifest.version == active,
                "created_at": manifest.created_at,
                "detectors": manifest.detectors,
                "thresholds": manifest.thresholds,
                "holdout_metrics": info.get("holdout_metrics", {}),
                "source": (info.get("lineage") or {}).get("source"),
            }
        )
    history = registry.activation_history(model_dir)[-args.history :] if args.history > 0 else []
    result = {
        "model_dir": str(model_dir),
        "active": active,
        "rollback_target": registry.rollback_target(model_dir),
        "versions": versions,
        "history": history,
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print(f"model registry {model_dir}: active {active or 'none'}")
    if not versions:
        print("  no versions (train one with `aegis train`)")
    for v in versions:
        mark = "*" if v["active"] else " "
        metrics = _metrics_text(v["holdout_metrics"])
        print(f"{mark} {v['version']:<22} created {v['created_at']:<26} {metrics}")
    if result["rollback_target"]:
        print(f"rollback goes to {result['rollback_target']}")
    if history:
        print("recent activations (oldest first):")
        for e in history:
            print(
                f"  {e.get('at')}  {e.get('previous') or '-'} -> {e.get('version')}"
                f"  ({e.get('reason')})"
            )
    return 0


def _metrics_text(metrics: dict) -> str:
    """A one-line summary of the ensemble's holdout metrics, if the manifest has them."""
    if not isinstance(metrics, dict):
        return ""
    scope = metrics.get("ensemble", metrics)
    if not isinstance(scope, dict):
        return ""
    parts = [f"{k}={v:.3f}" for k, v in scope.items() if isinstance(v, int | float)]
    return " ".join(parts[:4])
