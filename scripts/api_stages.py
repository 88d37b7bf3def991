"""Per-stage time of POST /v1/transactions from the API's /metrics, between two scrapes.

    python scripts/api_stages.py --url URL --token T --save before.txt
    ... load ...
    python scripts/api_stages.py --url URL --token T --since before.txt

Prints one JSON object: per stage (features, score, publish) the requests counted, the mean
and the share slower than 25 and 50 ms, from aegis_api_scoring_stage_seconds.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from urllib.request import Request, urlopen

LINE = re.compile(
    r'^aegis_api_scoring_stage_seconds_(bucket|sum|count)\{(?:le="([^"]+)",)?stage="(\w+)"'
    r'(?:,le="([^"]+)")?\} (\S+)$'
)


def scrape(url: str, token: str) -> dict:
    request = Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    values: dict = {}
    for line in urlopen(request, timeout=10).read().decode().splitlines():
        match = LINE.match(line)
        if match:
            kind, le1, stage, le2, value = match.groups()
            values[f"{stage}|{kind}|{le1 or le2 or ''}"] = float(value)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--since", type=Path)
    args = parser.parse_args()
    now = scrape(args.url, args.token)
    if args.save:
        args.save.write_text(json.dumps(now))
        return
    before = json.loads(args.since.read_text()) if args.since else {}
    delta = {k: v - before.get(k, 0.0) for k, v in now.items()}
    out = {}
    for stage in ("features", "score", "publish"):
        count = delta.get(f"{stage}|count|", 0.0)
        if not count:
            continue
        out[stage] = {
            "requests": int(count),
            "mean_ms": round(1000 * delta[f"{stage}|sum|"] / count, 2),
            "over_25ms": round(1 - delta.get(f"{stage}|bucket|0.025", 0.0) / count, 4),
            "over_50ms": round(1 - delta.get(f"{stage}|bucket|0.05", 0.0) / count, 4),
        }
    print(json.dumps({"stages": out}))


if __name__ == "__main__":
    main()
