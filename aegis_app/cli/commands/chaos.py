"""`aegis chaos [--transactions N] [--workers K] [--seconds S] [--json]`: fault injection.

`aegis chaos --soak --minutes M [--rate R]`: a fixed-rate soak reporting worker RSS and
RocksDB size every 30 s and whether state stopped growing. See aegis_app/harness/chaos/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chaos",
        help="fault injection (kill, rebalance, broker freeze, poison) on a real local stack",
    )
    p.add_argument("--transactions", type=int, default=20_000, help="valid transactions")
    p.add_argument("--workers", type=int, default=2, help="worker processes at the start")
    p.add_argument("--seconds", type=float, default=120.0, help="how long the stream lasts")
    p.add_argument("--poison", type=int, default=10_000, help="malformed records mixed in")
    p.add_argument(
        "--faults",
        default="kill,restart,add,pause,remove",
        help="comma-separated subset of kill,restart,add,pause,remove",
    )
    p.add_argument("--broker-pause", type=float, default=8.0, help="SIGSTOP seconds")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rebalance-timeout", type=float, help="seconds (default: the workers' own)")
    p.add_argument("--model-dir", type=Path, help="model registry (default: train a small one)")
    p.add_argument("--workdir", type=Path, help="keep logs and state here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--soak", action="store_true", help="soak mode instead of faults")
    p.add_argument("--minutes", type=float, default=10.0, help="soak duration")
    p.add_argument("--rate", type=float, default=100.0, help="soak transactions per second")
    p.add_argument("--event-days", type=int, default=90, help="soak event-time span in days")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aegis_app.harness import chaos

    if args.soak:
        config = chaos.SoakConfig(
            minutes=args.minutes,
            rate=args.rate,
            workers=args.workers,
            event_days=args.event_days,
            partitions=args.partitions,
            rebalance_timeout=args.rebalance_timeout,
            model_dir=args.model_dir,
            root=args.workdir,
            seed=args.seed,
        )

        def report(sample: dict) -> None:
            if not args.json:
                print(json.dumps(sample), file=sys.stderr, flush=True)

        result = chaos.soak(config, report)
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0 if result["verdict"].get("bounded") and not result["workers_crashed"] else 1

    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    unknown = set(faults) - set(chaos.FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; choose from {chaos.FAULTS}")
    config = chaos.ChaosConfig(
        transactions=args.transactions,
        workers=args.workers,
        seconds=args.seconds,
        poison=args.poison,
        faults=faults,
        broker_pause_s=args.broker_pause,
        partitions=args.partitions,
        rebalance_timeout=args.rebalance_timeout,
        model_dir=args.model_dir,
        root=args.workdir,
        seed=args.seed,
    )
    result = chaos.run(config)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0 if result["ok"] else 1
