"""Open-loop load on POST /v1/transactions: a fixed request rate for N seconds.

    python scripts/api_load.py --url http://127.0.0.1:8000 --token T --rate 200 --seconds 30
    python scripts/api_load.py --config configs/sparkov.toml --file fraudTest.csv ...

Requests start on a fixed schedule (i / rate), whether or not earlier ones have answered,
so a slow server cannot slow the load down (no coordinated omission). Latency is measured
from each request's scheduled start to its response. Prints one JSON object: offered and
achieved rate, p50/p95/p99/max latency in ms, status counts and errors.

Bodies are records in the schema of the config the API runs with (--config, default
AEGIS_CONFIG or the Handbook preset): rows of --file, or without it transactions of the
Handbook simulator (the Handbook schema only). Each gets a fresh transaction id (--id-base
and up), so runs do not collide; the label column is not sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd

from aegis_app.core import config as config_files
from aegis_app.core.config import Config
from aegis_app.core.settings import Settings
from aegis_app.core.source import SourceReader
from aegis_app.harness import simulator
from aegis_app.harness.request_bodies import request_bodies


def simulated(n: int, seed: int, customers: int, terminals: int, start_date: str) -> pd.DataFrame:
    """n generated transactions (Handbook columns); the same --customers/--terminals as the
    data replayed before the load give the cards and terminals their history (realistic
    state sizes)."""
    per_day = max(customers * 1.5, 1.0)
    days = max(2, int(n / per_day) + 2)
    frame = simulator.generate(
        customers=customers, terminals=terminals, days=days, seed=seed, start_date=start_date
    )
    return frame.head(n)


def from_file(path: Path, n: int, config: Config) -> pd.DataFrame:
    """The first n rows of a CSV (ids and categories kept as text) or Parquet file."""
    if path.name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path).head(n)
    return pd.read_csv(path, nrows=n, dtype=SourceReader(config).csv_dtypes(), low_memory=False)


def transactions(args: argparse.Namespace, n: int) -> list[dict]:
    config = (
        config_files.load(config_files.resolve(args.config))
        if args.config
        else Settings.from_env().load_config()
    )
    if args.file:
        frame = from_file(args.file, n, config)
    else:
        frame = simulated(n, args.seed, args.customers, args.terminals, args.start_date)
    try:
        return request_bodies(frame, config, args.id_base)
    except ValueError as exc:
        raise SystemExit(f"api_load: {exc} (give --file in the config's schema)") from None


async def run(args: argparse.Namespace) -> dict:
    n = int(args.rate * args.seconds)
    requests = transactions(args, n + args.warmup)
    if len(requests) < n + args.warmup:
        raise SystemExit(f"api_load: {len(requests)} rows for {n + args.warmup} requests")
    warmup, requests = requests[: args.warmup], requests[args.warmup :]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    # aiohttp: on a two-core machine the load generator shares the CPU with the server,
    # and aiohttp's client needs far less of it per request than httpx's.
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(
        base_url=args.url, headers=headers, timeout=timeout, connector=connector
    ) as client:
        # Warm-up: connections and the server's first-request costs are not measured.
        for body in warmup:
            async with client.post("/v1/transactions", json=body) as response:
                await response.read()

        async def one(body: dict, scheduled: float) -> None:
            try:
                async with client.post("/v1/transactions", json=body) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
                    if response.status != 200:
                        errors[f"HTTP {response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                statuses["error"] += 1
            latencies.append(time.perf_counter() - scheduled)

        started = time.perf_counter()
        tasks = []
        for i, body in enumerate(requests):
            scheduled = started + i / args.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "url": args.url,
        "requests": n,
        "rate_offered": args.rate,
        "rate_achieved": round(n / elapsed, 1),
        "seconds": round(elapsed, 2),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 2),
            "p95": round(float(np.percentile(ms, 95)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2),
            "max": round(float(ms.max()), 2),
            "mean": round(float(ms.mean()), 2),
        },
        "statuses": dict(statuses),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", help="bearer token (AEGIS_API_TOKEN of the server)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--config", help="the API's config file or preset (AEGIS_CONFIG)")
    parser.add_argument(
        "--file", type=Path, help="rows to send, in the config's schema (default: simulated)"
    )
    parser.add_argument("--id-base", type=int, default=900_000_000_000)
    parser.add_argument("--customers", type=int, default=5000, help="simulated population")
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--start-date", default="2018-04-01", help="first transaction day")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
