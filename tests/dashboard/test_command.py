"""`aegis dashboard`: registered in the CLI, runs Streamlit on loopback, passes the API on."""

from __future__ import annotations

from pathlib import Path

from aegis_app.cli.commands import dashboard
from aegis_app.cli.main import build_parser


def test_parser_and_environment():
    args = build_parser().parse_args(
        ["dashboard", "--port", "8600", "--api-url", "http://127.0.0.1:8001", "--token", "t"]
    )
    assert args.func is dashboard.run
    assert dashboard.page_env(args) == {
        "AEGIS_API_URL": "http://127.0.0.1:8001",
        "AEGIS_API_TOKEN": "t",
    }


def test_streamlit_command_is_headless_on_loopback():
    command = dashboard.streamlit_command(8600)
    app = Path(command[command.index("run") + 1])
    assert app.name == "app.py" and app.parent.name == "dashboard" and app.exists()
    options = dict(zip(command[5::2], command[6::2]))
    assert options["--server.port"] == "8600"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true"
    assert options["--client.showErrorDetails"] == "none"
