"""How long after a worker's SIGKILL its partitions are decided again (the takeover time).

    .venv/bin/python scripts/failover_time.py [--rate 100] [--before 15] [--after 100]
        [--rebalance-timeout S] [--env AEGIS_SESSION_TIMEOUT_S=6 ...] [--model-dir DIR]

A fresh embedded broker, two workers in one consumer group with the settings they would
have by default (unless `--rebalance-timeout` or `--env` say otherwise), a steady stream of
generated transactions, worker w1 SIGKILLed `--before` seconds in; the stream goes on for
`--after` seconds more. Prints one JSON object: `takeover_s` (from the kill to the first
decision of a transaction of one of w1's partitions sent after the kill; the last of its
partitions: `all_partitions_s`), `reassigned_s` (until the survivor's /health/ showed every
partition), lost and duplicated decisions. See aegis_app/harness/chaos/failover.py and
BENCHMARKS.md "Failover".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aegis_app.harness.chaos.failover import FailoverConfig, measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    parser.add_argument("--before", type=float, default=15.0, help="stream seconds before")
    parser.add_argument("--after", type=float, default=100.0, help="stream seconds after")
    parser.add_argument("--rebalance-timeout", type=float, help="default: the workers' own")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="for the workers"
    )
    parser.add_argument("--model-dir", type=Path, help="default: train a small model")
    parser.add_argument("--workdir", type=Path, help="keep logs and state here")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    result = measure(
        FailoverConfig(
            rate=args.rate,
            before_kill_s=args.before,
            after_kill_s=args.after,
            rebalance_timeout=args.rebalance_timeout,
            worker_env=env,
            model_dir=args.model_dir,
            root=args.workdir,
            keep=args.workdir is not None,
        )
    )
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 and not result["workers_crashed"] else 1


if __name__ == "__main__":
    sys.exit(main())
