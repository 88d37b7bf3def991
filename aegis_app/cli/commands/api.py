"""`aegis api --broker URL --port P [--host 127.0.0.1] [--db-url URL] [--token T]`.

The REST API under uvicorn, with the decision sink inside (unless --no-sink). A bearer
token is required (--token or AEGIS_API_TOKEN); --demo generates one and prints it.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="run the REST API (and the decision sink)")
    p.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)")
    p.add_argument("--port", type=int, help="listen port (AEGIS_API_PORT, default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--db-url", help="result store SQLAlchemy URL (AEGIS_DB_URL)")
    p.add_argument("--model-dir", type=Path, help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--token", help="bearer token for the API (AEGIS_API_TOKEN)")
    p.add_argument(
        "--open-reads",
        action="store_true",
        help="GET endpoints need no token (AEGIS_API_OPEN_READS)",
    )
    p.add_argument(
        "--worker-url", help="worker web view (AEGIS_WORKER_URL, default http://127.0.0.1:WEB_PORT)"
    )
    p.add_argument("--web-port", type=int, help="worker web port (AEGIS_WEB_PORT)")
    p.add_argument("--no-sink", action="store_true", help="do not run the decision sink here")
    p.add_argument("--demo", action="store_true", help="no token configured: generate one")
    p.add_argument("--loglevel", default="info")
    add_kafka_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    from aegis_app.core.settings import Settings
    from aegis_app.kafka import admin, private_names
    from aegis_app.kafka.clients import KafkaConnection
    from aegis_app.runtime.process import tune_process
    from aegis_app.serving.api import ApiSettings, create_app

    settings = Settings.from_env(
        kafka_broker=args.broker,
        api_port=args.port,
        db_url=args.db_url,
        model_dir=args.model_dir,
        web_port=args.web_port,
        **kafka_overrides(args),
    )
    connection = KafkaConnection.from_settings(settings)  # a bad TLS/SASL setting fails here
    api = ApiSettings.from_env(
        settings,
        token=args.token,
        open_reads=True if args.open_reads else None,
        worker_url=args.worker_url,
    )
    if not api.token:
        if not args.demo:
            print(
                "aegis api: error: no API token configured. Set AEGIS_API_TOKEN or pass "
                "--token (or --demo to generate a throw-away token for a demo).",
                file=sys.stderr,
            )
            return 2
        api = api.with_(token=secrets.token_urlsafe(24))
        print(f"aegis api: demo token (Authorization: Bearer ...): {api.token}", flush=True)
    # Fail now, naming them, if the installed aiokafka/Faust lack names Aegis relies on.
    private_names.check()
    # The API starts while the broker is down, but not with a login or certificate the
    # cluster refuses: that would only show as 503s later.
    admin.check_credentials(connection)
    app = create_app(settings, api, run_sink=not args.no_sink)
    sink = "off" if args.no_sink else "on"
    print(
        f"aegis api on http://{args.host}:{settings.api_port} "
        f"(broker {settings.kafka_broker}{connection.security_summary()}, "
        f"worker {api.worker_url}, store {settings.db_url}, sink {sink}, "
        f"config {app.state.config.path})",
        flush=True,
    )
    tune_process(settings, scoring=True)  # the scorer's models are imported by now
    uvicorn.run(
        app,
        host=args.host,
        port=settings.api_port,
        log_level=args.loglevel,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
