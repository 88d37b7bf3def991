"""`aegis dashboard --port P [--api-url URL] [--token T]`: the Streamlit analyst page."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from aegis_app.core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the Streamlit analyst page")
    p.add_argument("--port", type=int, help="page port (AEGIS_DASHBOARD_PORT, default 8501)")
    p.add_argument("--address", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--api-url", help="REST API base URL (AEGIS_API_URL)")
    p.add_argument("--token", help="API bearer token for labelling (AEGIS_API_TOKEN)")
    p.add_argument("--model-dir", type=Path, help="model registry, for PR curves (AEGIS_MODEL_DIR)")
    p.set_defaults(func=run)


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The `streamlit run` command line for the page (no browser, no telemetry)."""
    # Located, not imported: the page's modules run inside Streamlit's process.
    app = Path(importlib.util.find_spec("dashboard").origin).parent / "app.py"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--client.showErrorDetails",
        "none",
        "--theme.base",
        "light",
    ]


def page_env(args: argparse.Namespace) -> dict[str, str]:
    """AEGIS_* variables for the page process: options override the environment."""
    env: dict[str, str] = {}
    if args.api_url:
        env["AEGIS_API_URL"] = args.api_url
    if args.token:
        env["AEGIS_API_TOKEN"] = args.token
    if args.model_dir:
        env["AEGIS_MODEL_DIR"] = str(args.model_dir)
    return env


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    port = args.port or settings.dashboard_port
    command = streamlit_command(port, args.address)
    env = {**os.environ, **page_env(args)}
    api_url = env.get("AEGIS_API_URL") or f"http://127.0.0.1:{settings.api_port}"
    print(f"analyst page on http://{args.address}:{port}/ (API {api_url})", flush=True)
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C, SIGTERM from `make demo`) reach Streamlit directly.
    os.execve(sys.executable, command, env)
    return 0  # not reached
