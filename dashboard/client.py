"""The one place the analyst page talks to the Aegis REST API (httpx).

Every failure becomes an `ApiError` whose `message` tells an analyst what happened and what
to do; the page shows that message and never a traceback. A request the API refuses as
asked (400, 409, 422) is an `ApiRejected` carrying the API's JSON answer, so the page can
show it beside the field it names. Tests pass a fake object with the same methods, or an
`httpx.MockTransport` via `transport=`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

LABELS = ("fraud", "legitimate")


class ApiError(RuntimeError):
    """A request the page could not complete; `message` is meant for the analyst, `body`
    is the API's JSON answer when it gave one."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body


class ApiRejected(ApiError):
    """The API refused the request as asked (HTTP 400, 409 or 422). `body` is its answer:
    `detail` and `field` (what to correct), and the extra fields of some answers: the
    expression's `line`, `column`, `offset`; an activation over the alert budget's
    `added_alerts_per_day`, `budget`, `start`, `end`."""

    @property
    def detail(self) -> str | None:
        return self.body.get("detail") if isinstance(self.body, dict) else None

    @property
    def field(self) -> str | None:
        return self.body.get("field") if isinstance(self.body, dict) else None


class ApiUnavailable(ApiError):
    """The API did not answer (not running, wrong URL, timeout)."""


class ApiUnauthorized(ApiError):
    """The API refused the token (missing, wrong or without the needed rights)."""


class ApiNotFound(ApiError):
    """The alert, card or model asked for does not exist."""


class DriftUnavailable(ApiError):
    """The API cannot measure drift (no active model, or one trained without a reference)."""


@dataclass(frozen=True)
class RuleSpec:
    """What a rule says, as create_rule and edit_rule send it (the page's rule form)."""

    expression: str
    action: str  # allow, review, block or tag
    reason: str
    priority: int = 0
    note: str | None = None  # why this version: kept with it and in the audit log

    def body(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note or None}


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
        *,
        card: str | None = None,
        merchant: str | None = None,
        q: str | None = None,
        rule: int | None = None,
        shadow: bool | None = None,
    ) -> dict[str, Any]:
        """{"items": [alert rows, newest first], "total": N | None, "more": bool}.

        `total` is None when the API does not count (it pages with `next_cursor`);
        `more` says whether rows beyond this page exist. `q`: the transaction id, card or
        merchant is exactly this; `rule`: decisions that rule matched (`shadow`: only its
        shadow matches, or only its active ones). Without `action`, the API answers the
        review and block decisions only.
        """
        params = {
            "action": action,
            "status": status,
            "min_score": min_score,
            "max_score": max_score,
            "since": since,
            "until": until,
            "card": card,
            "merchant": merchant,
            "q": q,
            "rule": rule,
            "shadow": shadow,
            "limit": limit,
            "offset": offset,
        }
        body = self._get("/v1/alerts", _present(params), what="alerts")
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
            raise DriftUnavailable(_detail(response, _error_body(response)), status=503)
        return _json(response)

    def metrics_text(self) -> str:
        """The Prometheus exposition text of /metrics."""
        response = self._request("GET", "/metrics")
        return response.text

    def list_rules(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every rule's newest version (of those in `state`), with its hits_active,
        hits_shadow and last_hit_day."""
        return self._get("/v1/rules", _present({"state": state}), what="rules")["items"]

    def get_rule(self, rule_id: int) -> dict[str, Any]:
        """The rule as it stands and its `history` (every version, oldest first)."""
        return self._get(f"/v1/rules/{_segment(rule_id)}", what=f"rule {rule_id}")

    def rule_names(self) -> dict[str, Any]:
        """What a rule can read under the API's config: {"items": [{"name", "kind"}],
        "lists": [names]}."""
        return self._get("/v1/rules/names", what="rule names")

    def rule_hits(
        self, rule_id: int, start: date | str | None = None, end: date | str | None = None
    ) -> dict[str, Any]:
        """The rule's live matches per event day in [start, end): {"rule_id", "days":
        [{"day", "version", "shadow", "hits"}], "total_active", "total_shadow"}."""
        return self._get(
            f"/v1/rules/{_segment(rule_id)}/hits",
            _period(start, end),
            what=f"rule {rule_id}",
        )

    def lists(self) -> list[dict[str, Any]]:
        """Every list's name, version, size, changed_by, changed_at and note."""
        return self._get("/v1/lists", what="lists")["items"]

    def get_list(self, name: str) -> dict[str, Any]:
        """A list's items and version (ApiNotFound when there is no such list)."""
        return self._get(f"/v1/lists/{_segment(name)}", what=f"list {name}")

    def audit(self, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The audit log newest first (of one target, e.g. "rule:3"): who, what, when,
        target, note, details."""
        params = _present({"target": target, "limit": limit})
        return self._get("/v1/audit", params, what="audit log")["items"]

    # ------------------------------------------------------------------ writes
    def label(
        self,
        transaction_id: int | str,
        label: str,
        note: str | None = None,
        analyst: str | None = None,
    ) -> dict[str, Any]:
        body = self._verdict(label, note, analyst)
        return self._write(
            "POST",
            f"/v1/alerts/{_segment(transaction_id)}/label",
            body,
            what=f"alert {transaction_id}",
        )

    def label_many(
        self,
        transaction_ids: Iterable[int | str],
        label: str,
        note: str | None = None,
        analyst: str | None = None,
    ) -> dict[str, Any]:
        """One verdict for up to 500 alerts: {"labelled": [ids], "not_found": [ids],
        "published": N}."""
        body = {"transaction_ids": [str(t) for t in transaction_ids]}
        body.update(self._verdict(label, note, analyst))
        return self._write("POST", "/v1/alerts/labels", body, what="alerts")

    def create_rule(self, spec: RuleSpec) -> dict[str, Any]:
        """A new rule, in draft. ApiRejected naming the field (for the expression, its
        line and column) when the API refuses it."""
        return self._write("POST", "/v1/rules", spec.body(), what="rules")

    def edit_rule(self, rule_id: int, spec: RuleSpec) -> dict[str, Any]:
        """A new draft version of a draft, shadow or retired rule (an active one: 409)."""
        path = f"/v1/rules/{_segment(rule_id)}"
        return self._write("PUT", path, spec.body(), what=f"rule {rule_id}")

    def backtest_rule(
        self,
        rule_id: int,
        start: date | str | None = None,
        end: date | str | None = None,
        days: int | None = None,
    ) -> dict[str, Any]:
        """The rule over the stored decisions of [start, end), or of the `days` days up to
        the newest stored (default: the API's period)."""
        body: dict[str, Any] = _period(start, end)
        if days is not None:
            body["days"] = int(days)
        return self._rule_step(rule_id, "backtest", body)

    def shadow_rule(self, rule_id: int, note: str | None = None) -> dict[str, Any]:
        return self._rule_step(rule_id, "shadow", {"note": note or None})

    def activate_rule(
        self,
        rule_id: int,
        confirm: bool = False,
        note: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> dict[str, Any]:
        """Let a shadow rule decide. Over the alert budget without `confirm`, ApiRejected
        (409) whose body has added_alerts_per_day, budget, start and end."""
        body = {"note": note or None, "confirm": bool(confirm)}
        body.update(_period(start, end))
        return self._rule_step(rule_id, "activate", body)

    def retire_rule(self, rule_id: int, note: str | None = None) -> dict[str, Any]:
        return self._rule_step(rule_id, "retire", {"note": note or None})

    def put_list(self, name: str, items: Iterable[str], note: str | None = None) -> dict[str, Any]:
        """Set a list's items (a new version; running rules read it at once). ApiRejected
        naming the field for a bad name or item."""
        body = {"items": list(items), "note": note or None}
        return self._write("PUT", f"/v1/lists/{_segment(name)}", body, what=f"list {name}")

    # ------------------------------------------------------------------ plumbing
    def _get(self, path: str, params: dict | None = None, what: str = "data") -> Any:
        return _json(self._request("GET", path, params=params, what=what))

    def _write(self, method: str, path: str, body: dict, what: str) -> Any:
        """A change: explained without a request when the page has no token."""
        if not self.has_token:
            raise ApiUnauthorized(
                "Changes (labels, rules) need an API token. Restart the page with "
                "`aegis dashboard --token <token>` (or set AEGIS_API_TOKEN).",
                status=401,
            )
        return _json(self._request(method, path, json=body, what=what))

    def _rule_step(self, rule_id: int, step: str, body: dict) -> Any:
        path = f"/v1/rules/{_segment(rule_id)}/{step}"
        return self._write("POST", path, body, what=f"rule {rule_id}")

    @staticmethod
    def _verdict(label: str, note: str | None, analyst: str | None) -> dict[str, Any]:
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, not {label!r}")
        return {"label": label, "note": note or None, "analyst": analyst or None}

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
        body = _error_body(response) if status >= 400 else None
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
                body=body,
            )
        if status == 404:
            raise ApiNotFound(f"No {what} found (HTTP 404).", status=status, body=body)
        if status == 409:
            raise ApiRejected(
                f"The API refused the change: {_detail(response, body)}", status=status, body=body
            )
        if status == 422 or status == 400:
            raise ApiRejected(
                f"The API rejected the request: {_detail(response, body)}", status=status, body=body
            )
        if status >= 400:
            raise ApiError(
                f"The Aegis API answered HTTP {status} for {what}. Try again in a moment; if "
                "it persists, look at the API log.",
                status=status,
                body=body,
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


def _present(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters given (None: not sent)."""
    return {k: v for k, v in params.items() if v is not None}


def _period(start: date | str | None, end: date | str | None) -> dict[str, str]:
    """{"start", "end"} as given (a date's str is YYYY-MM-DD); None: not sent."""
    given = {"start": start, "end": end}
    return {name: str(value) for name, value in given.items() if value is not None}


def _error_body(response: httpx.Response) -> Any:
    """The JSON of an error answer, or None (a proxy's HTML page, an empty body)."""
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response, body: Any) -> str:
    """The API's reason from an error answer's JSON `body` (read once, by the caller)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict)) or None
    return str(detail or response.text[:200] or f"HTTP {response.status_code}")
