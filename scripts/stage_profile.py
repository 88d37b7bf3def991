"""Where a worker's CPU goes, per stage, from a py-spy profile of a whole `aegis bench`.

    py-spy record --subprocesses -r 200 -f raw -o bench.collapsed -- \\
        .venv/bin/aegis bench --transactions 20000 --workers 1 --model-dir DIR --json
    .venv/bin/python scripts/stage_profile.py bench.collapsed --cpu-ms-per-tx 0.35

Reads py-spy's collapsed stacks (one line per stack: frames separated by ";" and a sample
count), keeps the `aegis worker` process's samples, and puts each sample in the first
stage (top to bottom of the table below) whose frame it contains. Samples of the worker's
start-up (imports, model load, compiling) and of an idle event loop (waiting in select)
are set apart, so the shares are of the busy samples. With --cpu-ms-per-tx (the bench's
`worker_cpu_ms_per_tx`), each stage is also given in µs of CPU per transaction.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (stage, frame substrings: any of them puts a sample in the stage), first match wins.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "start-up (imports, model load, compiling)",
        ("_find_and_load", "_compile (tables", "StreamEngine.__init__", "maybe_reload"),
    ),
    ("idle (event loops waiting for I/O, the scoring thread for work)", ("EpollSelector.select",)),
    ("score: detectors and ensemble", ("ModelBundle.score", "feature_matrix")),
    ("score: decisions, rules, JSON", ("_score (agents/scoring",)),
    ("features and state (tables/engine)", ("StreamEngine.", "observe_transactions (")),
    ("record decode and validation", ("RecordCodec.",)),
    ("state store reads, writes and changelog sends", ("LeanTable.",)),
    ("publish (hops, decisions, alerts)", ("raw_producer.py",)),
    ("aiokafka producer sender", ("Sender.", "MessageAccumulator.")),
    ("stage code (batches, hops, acks)", ("decide_cards", "observe_entities", "run_scorer")),
    ("state replicas (applying changelog records)", ("StateReplica.",)),
    (
        "aiokafka consumer (fetch requests, record parsing)",
        ("ConsumerThread", "aiokafka/consumer/"),
    ),
    ("fetch loop (Faust consumer, batch delivery)", ("_drain_messages", "getmany")),
    ("rest of the event loop (Faust, mode, asyncio)", ("_run_once",)),
)
OTHER = "other"


# The scoring thread waiting for its next batch (py-spy does not always see it as idle).
IDLE_WAIT = "_worker (concurrent/futures/thread.py"


def stage_of(frames: list[str]) -> str:
    if frames and frames[-1].startswith(IDLE_WAIT):
        return STAGES[1][0]
    for stage, needles in STAGES:
        if any(needle in frame for frame in frames for needle in needles):
            return stage
    return OTHER


def worker_samples(path: Path) -> Counter[str]:
    per_stage: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # --subprocesses: the first frames name the processes, the bench's then its child's.
        process = next((i for i, f in enumerate(frames) if " worker --broker" in f), None)
        if process is None or not count.isdigit():
            continue
        per_stage[stage_of(frames[process + 1 :])] += int(count)
    return per_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy raw (collapsed) output")
    parser.add_argument("--cpu-ms-per-tx", type=float, help="the bench's worker_cpu_ms_per_tx")
    args = parser.parse_args()
    per_stage = worker_samples(args.profile)
    set_apart = [STAGES[0][0], STAGES[1][0]]
    busy = sum(n for stage, n in per_stage.items() if stage not in set_apart)
    if busy == 0:
        raise SystemExit(f"{args.profile}: no busy samples of an `aegis worker` process")
    print(f"worker samples: {sum(per_stage.values())}, busy: {busy}")
    for stage in set_apart:
        print(f"  set apart: {stage}: {per_stage[stage]}")
    print("| stage | share of busy samples |" + (" µs per tx |" if args.cpu_ms_per_tx else ""))
    print("|---|---|" + ("---|" if args.cpu_ms_per_tx else ""))
    for stage, _ in [*STAGES[2:], (OTHER, ())]:
        share = per_stage[stage] / busy
        row = f"| {stage} | {100 * share:.1f} % |"
        if args.cpu_ms_per_tx:
            row += f" {1000 * args.cpu_ms_per_tx * share:.0f} |"
        print(row)


if __name__ == "__main__":
    main()
