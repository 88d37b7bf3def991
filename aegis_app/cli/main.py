"""The `aegis` command line. Every option also has an AEGIS_* environment variable
(see aegis_app.core.settings); an option given on the command line wins."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from aegis_app.cli.datafiles import load_configured
from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides
from aegis_app.core.settings import Settings, config_in_environment
from aegis_app.kafka.security import KafkaSecurityError


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the options this command was given."""
    overrides = {
        "kafka_broker": getattr(args, "broker", None),
        "data_dir": getattr(args, "data_dir", None),
        "model_dir": getattr(args, "model_dir", None),
        "web_port": getattr(args, "web_port", None),
        "partitions": getattr(args, "partitions", None),
        "label_delay_days": getattr(args, "delay_days", None),
        **kafka_overrides(args),
    }
    return Settings.from_env(**overrides)


def cmd_broker(args: argparse.Namespace) -> int:
    from aegis_app.harness.embedded_broker import run_foreground

    port = args.port or Settings.from_env().broker_port
    return run_foreground(port=port, log_path=args.log)


def cmd_worker(args: argparse.Namespace) -> int:
    from aegis_app.worker import run as worker

    conf = _settings(args)
    if args.rebalance_timeout:
        conf = conf.with_(rebalance_timeout_s=args.rebalance_timeout)
    worker.run(conf, loglevel=args.loglevel)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from aegis_app.core import files
    from aegis_app.harness import simulator
    from aegis_app.kafka.clients import KafkaConnection

    # A bad TLS/SASL setting fails now, not after the transactions are generated.
    connection = KafkaConnection.from_settings(_settings(args)) if args.topic else None
    frame = simulator.generate(
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        seed=args.seed,
        start_date=args.start_date,
        progress=not args.quiet,
    )
    if args.bursts_from is not None:
        from aegis_app.harness.scenarios import add_spending_bursts

        frame = add_spending_bursts(frame, args.bursts_from, seed=args.seed)
    summary = {
        "transactions": len(frame),
        "frauds": int(frame["TX_FRAUD"].sum()),
        "fraud_rate": round(float(frame["TX_FRAUD"].mean()), 5) if len(frame) else 0.0,
        "customers_with_transactions": int(frame["CUSTOMER_ID"].nunique()),
    }
    if args.out:
        from aegis_app.core import config

        files.write_transactions(frame, args.out)
        summary["out"] = str(args.out)
        # The file's schema and features, beside it: `--config` for every later command.
        schema = Path(args.out).with_suffix(".config.toml")
        schema.write_text(config.resolve(None).read_text())
        summary["config"] = str(schema)
    if connection is not None:
        from aegis_app.ingest.replay import replay

        rows = files.iter_frame(frame)
        result = asyncio.run(
            replay(
                rows,
                connection,
                rate=args.rate,
                total=len(frame),
                progress=not args.quiet,
            )
        )
        summary["produced"] = result.as_dict()
    print(json.dumps(summary))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from aegis_app.core import files
    from aegis_app.ingest.replay import replay
    from aegis_app.kafka.clients import KafkaConnection

    conf = _settings(args)
    config = conf.load_config()  # the file's schema
    connection = KafkaConnection.from_settings(conf)  # a bad TLS/SASL setting fails here

    def report(line: int, reason: str) -> None:
        print(f"{args.file}:{line}: {reason}", file=sys.stderr)

    rows = files.iter_transactions(args.file, config)
    total = files.count_rows(args.file) if not args.quiet else None
    # The config's [labels] delay_days, unless --delay-days says otherwise.
    delay = args.delay_days if args.delay_days is not None else config.label_delay_days
    summary = asyncio.run(
        replay(
            rows,
            connection,
            rate=args.rate,
            label_delay_days=None if args.no_labels else delay,
            total=total,
            progress=not args.quiet,
            on_bad_row=report,
            config=config,
        )
    )
    print(json.dumps(summary.as_dict()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from models.lifecycle.experiment import train
    from models.lifecycle.training import Window, default_train_window

    conf = _settings(args)
    config = conf.load_config()
    frame = load_configured(args.data, config)
    if args.train_start:
        window = Window(pd.Timestamp(args.train_start), args.train_days)
    else:
        window = default_train_window(frame["TX_DATETIME"], args.train_days, conf.label_delay_days)
    manifest = train(
        frame,
        conf.model_dir,
        window,
        conf.label_delay_days,
        progress=not args.quiet,
        config=config,
    )
    print(
        json.dumps(
            {
                "version": manifest.version,
                "model_dir": str(conf.model_dir),
                "training_window": manifest.training_window,
                "thresholds": manifest.thresholds,
            }
        )
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from models.lifecycle.evaluation import Split
    from models.lifecycle.experiment import dumps, evaluate

    config = _settings(args).load_config()
    frame = load_configured(args.data, config)
    split = Split(args.train_start, args.train_days, args.delay_days, args.test_days)
    result = evaluate(
        frame, split, scores_out=args.scores_out, progress=not args.quiet, config=config
    )
    print(dumps(result))
    return 0


def _broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)"
    )
    add_kafka_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Tansu broker on 127.0.0.1")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (AEGIS_BROKER_PORT, 9092)")
    p.add_argument("--log", type=Path, help="broker log file (default: discard)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run a Faust worker (stream processing + web view)")
    _broker_option(p)
    p.add_argument("--data-dir", type=Path, help="RocksDB state directory (AEGIS_DATA_DIR)")
    p.add_argument("--web-port", type=int, help="web view port (AEGIS_WEB_PORT)")
    p.add_argument("--model-dir", type=Path, help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--partitions", type=int, help="partitions per topic (AEGIS_PARTITIONS)")
    p.add_argument("--rebalance-timeout", type=float, help="seconds (AEGIS_REBALANCE_TIMEOUT_S)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("generate", help="simulate transactions (Fraud Detection Handbook)")
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--days", type=int, default=183)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-date", default="2018-04-01")
    p.add_argument(
        "--bursts-from",
        type=int,
        metavar="DAY",
        help="add fraud scenario 4 (spending bursts, aegis_app/scenarios.py) from this day on",
    )
    p.add_argument("--out", type=Path, help="write a .csv or .parquet file")
    p.add_argument("--topic", action="store_true", help="produce onto aegis.transactions")
    p.add_argument("--rate", type=float, help="transactions per second when producing")
    p.add_argument("--quiet", action="store_true")
    _broker_option(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "replay",
        help="stream a CSV (.csv, .csv.gz) or Parquet file in the config's schema onto "
        "aegis.transactions, with its labels on aegis.labels",
    )
    p.add_argument("file", type=Path)
    _broker_option(p)
    p.add_argument("--rate", type=float, help="transactions per second (default: max)")
    p.add_argument(
        "--delay-days", type=int, help="label delay (default: the config's labels.delay_days)"
    )
    p.add_argument("--no-labels", action="store_true", help="do not publish labels")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("train", help="train and register a model version")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model-dir", type=Path, help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--train-start", help="first training day (default: latest labelled week)")
    p.add_argument("--train-days", type=int, default=7)
    p.add_argument("--delay-days", type=int, help="label delay (AEGIS_LABEL_DELAY_DAYS)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the Handbook protocol: train, delay, test")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--train-start", required=True, help="e.g. 2018-07-25")
    p.add_argument("--train-days", type=int, default=7)
    p.add_argument("--delay-days", type=int, default=7)
    p.add_argument("--test-days", type=int, default=7)
    p.add_argument("--scores-out", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    for module in _command_modules():
        module.register(sub)
    _add_config_option(parser)
    return parser


def leaf_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) of every command that runs, e.g. (("ingest", "kinesis"), p)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, child in group.choices.items():
            yield from leaf_parsers(child, (*path, name))


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` on every command (and every command under a command group)."""
    for _, command in leaf_parsers(parser):
        command.add_argument(
            "--config",
            type=Path,
            help="the schema and features config, TOML or YAML (AEGIS_CONFIG; default "
            "configs/handbook.toml)",
        )


def _checked_config(args: argparse.Namespace) -> Path:
    """The command's config file, checked now (a mistake is named before anything starts)."""
    from aegis_app.core import config

    path = config.resolve(getattr(args, "config", None) or Settings.from_env().config)
    config.load(path)
    return path


def _command_modules():
    import importlib
    import pkgutil

    from aegis_app.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"aegis_app.cli.commands.{info.name}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from aegis_app.core.config import ConfigError

    try:
        config_path = _checked_config(args)
    except ConfigError as exc:
        print(f"aegis {args.command}: error in the config: {exc}", file=sys.stderr)
        return 2
    # The command's parts, and the processes it starts, read the config through
    # AEGIS_CONFIG; a caller in the same process (a test, a script) gets its own back.
    with config_in_environment(config_path):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"aegis {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KafkaSecurityError as exc:  # a refused login or an untrusted certificate
        print(f"aegis {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
