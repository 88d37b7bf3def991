"""The one place the analyst page talks to the Aegis REST API (httpx).

Every failure becomes an `ApiError` whose `message` tells an analyst what happened and what
to do; the page shows that message and never a traceback. Tests pass a fake object with the
same methods, or an `httpx.MockTransport` via `transport=`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

LABELS = ("fraud", "legitimate")


class ApiError(RuntimeError):
    """A request the page could not complete; `message` is meant for the analyst."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ApiUnavailable(ApiError):
    """The API did not answer (not running, wrong URL, timeout)."""


class ApiUnauthorized(ApiError):
    """The API refused the token (missing, wrong or without the needed rights)."""


class ApiNotFound(ApiError):
    """The alert, card or model asked for does not exist."""


class DriftUnavailable(ApiError):
    """The API cannot measure drift (no active model, or one trained without a reference)."""


class AegisClient:
    """Thin synchronous client for the /v1 API. Reads and writes carry the bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.has_token = bool(token)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ reads
    def alerts(
        self,
        action: str | list[str] | None = None,
        status: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """{"items": [alert rows, newest first], "total": N | None, "more": bool}.

        `total` is None when the API does not count (it pages with `next_cursor`);
        `more` says whether rows beyond this page exist.
        """
        params = {
            "action": action,
            "status": status,
            "min_score": min_score,
            "max_score": max_score,
            "since": since,
            "until": until,
            "limit": limit,
            "offset": offset,
        }
        body = self._get(
            "/v1/alerts", {k: v for k, v in params.items() if v is not None}, what="alerts"
        )
        if isinstance(body, list):  # tolerate a bare list
            body = {"items": body}
        items = list(body.get("items", []))
        total = body.get("total")
        total = int(total) if isinstance(total, int | float) else None
        more = bool(body.get("next_cursor")) or (total is not None and offset + len(items) < total)
        return {"items": items, "total": total, "more": more}

    def alert(self, transaction_id: int | str) -> dict[str, Any]:
        return self._get(f"/v1/alerts/{_segment(transaction_id)}", what=f"alert {transaction_id}")

    def card(self, card_id: int | str) -> dict[str, Any]:
        return self._get(f"/v1/cards/{_segment(card_id)}", what=f"card {card_id}")

    def models(self) -> dict[str, Any]:
        return self._get("/v1/models", what="model registry")

    def drift(self, hours: int = 24, windows: int = 7) -> dict[str, Any]:
        """PSI per event-time window against the active model's training data (GET /v1/drift).

        Raises DriftUnavailable, carrying the API's reason, when there is nothing to
        compare with (no model, or a model trained before drift monitoring).
        """
        response = self._request(
            "GET",
            "/v1/drift",
            params={"hours": hours, "windows": windows},
            what="drift",
            passthrough=(503,),
        )
        if response.status_code == 503:
            raise DriftUnavailable(_detail(response), status=503)
        return _json(response)

    def metrics_text(self) -> str:
        """The Prometheus exposition text of /metrics."""
        response = self._request("GET", "/metrics")
        return response.text

    # ------------------------------------------------------------------ writes
    def label(
        self,
        transaction_id: int | str,
        label: str,
        note: str | None = None,
        analyst: str | None = None,
    ) -> dict[str, Any]:
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, not {label!r}")
        if not self.has_token:
            raise ApiUnauthorized(
                "Labelling needs an API token. Restart the page with "
                "`aegis dashboard --token <token>` (or set AEGIS_API_TOKEN).",
                status=401,
            )
        body = {"label": label, "note": note or None, "analyst": analyst or None}
        response = self._request(
            "POST",
            f"/v1/alerts/{_segment(transaction_id)}/label",
            json=body,
            what=f"alert {transaction_id}",
        )
        return _json(response)

    # ------------------------------------------------------------------ plumbing
    def _get(self, path: str, params: dict | None = None, what: str = "data") -> Any:
        return _json(self._request("GET", path, params=params, what=what))

    def _request(
        self,
        method: str,
        path: str,
        what: str = "data",
        passthrough: tuple[int, ...] = (),
        **kwargs: Any,
    ):
        """The response, or an ApiError; statuses in `passthrough` are returned as they are
        (for callers that explain them themselves)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiUnavailable(
                f"The Aegis API at {self.base_url} did not answer in time. It may be "
                "overloaded or restarting; the page retries on its own."
            ) from None
        except httpx.HTTPError:
            raise ApiUnavailable(
                f"Cannot reach the Aegis API at {self.base_url}. Check that it is running "
                "(`aegis api` or `make demo`) and that --api-url / AEGIS_API_URL points at "
                "it; the page retries on its own."
            ) from None
        status = response.status_code
        if status in passthrough:
            return response
        if status in (401, 403):
            hint = (
                "The token given to the page was refused"
                if self.has_token
                else "The API requires a token and none was given"
            )
            raise ApiUnauthorized(
                f"{hint} (HTTP {status}). Restart the page with "
                "`aegis dashboard --token <token>` (or set AEGIS_API_TOKEN) using the token "
                "the API was started with.",
                status=status,
            )
        if status == 404:
            raise ApiNotFound(f"No {what} found (HTTP 404).", status=status)
        if status == 409:
            raise ApiError(f"The API refused the change: {_detail(response)}", status=status)
        if status == 422 or status == 400:
            raise ApiError(f"The API rejected the request: {_detail(response)}", status=status)
        if status >= 400:
            raise ApiError(
                f"The Aegis API answered HTTP {status} for {what}. Try again in a moment; if "
                "it persists, look at the API log.",
                status=status,
            )
        return response


def _segment(value: int | str) -> str:
    """An id as one URL path segment: ids are the user's text ("#", "?", "/" included)."""
    return quote(str(value), safe="")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"The API at {response.request.url} did not answer with JSON; is --api-url "
            "pointing at the Aegis API?"
        ) from None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict)) or None
    return str(detail or response.text[:200] or f"HTTP {response.status_code}")
