"""Shared page plumbing: the API client for this session and friendly error display."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from dashboard import config
from dashboard.client import AegisClient, ApiError, ApiUnauthorized, ApiUnavailable

log = logging.getLogger("aegis.dashboard")
T = TypeVar("T")

# Tests put a fake client here (st.session_state[CLIENT_KEY] = FakeClient(...)).
CLIENT_KEY = "aegis_client"
FLASH_KEY = "aegis_flash"


@st.cache_resource(show_spinner=False)
def _shared_client(api_url: str, token: str | None) -> AegisClient:
    return AegisClient(api_url, token)


def get_client() -> Any:
    """The client this session uses: an injected one (tests) or one per API URL and token."""
    injected = st.session_state.get(CLIENT_KEY)
    if injected is not None:
        return injected
    cfg = config.load()
    return _shared_client(cfg.api_url, cfg.api_token)


def show_api_error(exc: Exception, where: str = "") -> None:
    """An st.error an analyst can act on; the traceback goes to the log, not the page."""
    prefix = f"{where}: " if where else ""
    if isinstance(exc, ApiUnavailable):
        st.error(f"**API unreachable.** {prefix}{exc.message}", icon=":material/cloud_off:")
    elif isinstance(exc, ApiUnauthorized):
        st.error(f"**Not authorised.** {prefix}{exc.message}", icon=":material/key_off:")
    elif isinstance(exc, ApiError):
        st.error(f"{prefix}{exc.message}", icon=":material/warning:")
    else:
        log.exception("dashboard section failed")
        st.error(
            f"{prefix}Something went wrong while drawing this section ({type(exc).__name__}). "
            "It will retry on the next refresh; the dashboard log has the details.",
            icon=":material/warning:",
        )


def guarded(call: Callable[[], T], where: str = "", quiet: bool = False) -> T | None:
    """call(), or None after showing a friendly error (nothing at all when quiet)."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - never a traceback on the page
        if not quiet:
            show_api_error(exc, where)
        else:
            log.warning("%s failed: %s", where or "request", exc)
        return None


def flash(kind: str, text: str) -> None:
    """A message shown once at the top of the queue on the next run."""
    st.session_state[FLASH_KEY] = (kind, text)


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        kind, text = message
        (st.success if kind == "success" else st.warning)(text)
