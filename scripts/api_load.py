"""Open-loop load on POST /v1/transactions: a fixed request rate for N seconds.

    python scripts/api_load.py --url http://127.0.0.1:8000 --token T --rate 200 --seconds 30

Requests start on a fixed schedule (i / rate), whether or not earlier ones have answered,
so a slow server cannot slow the load down (no coordinated omission). Latency is measured
from each request's scheduled start to its response. Prints one JSON object: offered and
achieved rate, p50/p95/p99/max latency in ms, status counts and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import aiohttp
import numpy as np

from aegis_app.core.files import iter_frame
from aegis_app.harness import simulator


def transactions(
    n: int, seed: int, id_base: int, customers: int, terminals: int, start_date: str
) -> list[dict]:
    """n generated transactions; the same --customers/--terminals as the data replayed
    before the load give the cards and terminals their history (realistic state sizes)."""
    per_day = max(customers * 1.5, 1.0)
    days = max(2, int(n / per_day) + 2)
    frame = simulator.generate(
        customers=customers, terminals=terminals, days=days, seed=seed, start_date=start_date
    ).head(n)
    out = []
    for i, (_, record, _) in enumerate(iter_frame(frame)):
        wire = record.to_wire()
        out.append(
            {
                "transaction_id": id_base + i,
                "tx_datetime": wire["tx_datetime"],
                "customer_id": wire["customer_id"],
                "terminal_id": wire["terminal_id"],
                "tx_amount": wire["tx_amount"],
            }
        )
    return out


async def run(args: argparse.Namespace) -> dict:
    n = int(args.rate * args.seconds)
    bodies = transactions(
        n + args.warmup, args.seed, args.id_base, args.customers, args.terminals, args.start_date
    )
    warmup, bodies = bodies[: args.warmup], bodies[args.warmup :]
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
        for i, body in enumerate(bodies):
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
    parser.add_argument("--id-base", type=int, default=900_000_000_000)
    parser.add_argument("--customers", type=int, default=5000, help="simulated population")
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--start-date", default="2018-04-01", help="first transaction day")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
