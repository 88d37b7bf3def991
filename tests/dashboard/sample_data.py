"""Realistic decisions and a fake API client for the analyst-page tests (no network)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard.client import ApiNotFound, ApiUnauthorized, ApiUnavailable

DETECTORS = ("isolation_forest", "logistic_regression", "gradient_boosting")
MODEL_VERSION = "v20261124T203537"


def decisions(
    n: int = 60, seed: int = 7, now: datetime | None = None, flavour: str = "handbook"
) -> list[dict[str, Any]]:
    """`n` alert rows (review/block) over the last 30 minutes, newest first; a third labelled.

    Decisions as the API answers them (records v2) under configs/handbook.toml (integer-like
    text ids, the Handbook's feature names) or, with flavour="sparkov", configs/sparkov.toml
    (hex transaction ids, card numbers, merchant names, extra fields, its feature names).
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    rows = []
    for i in range(n):
        decided = now - timedelta(seconds=30 * 60 * (i + 0.5) / n)
        score = round(0.99 + rng.random() * 0.00999, 6)
        action = "block" if score >= 0.999 else "review"
        amount = round(rng.lognormvariate(3.5, 1.0), 2)
        when = datetime(2018, 8, 1, 12, tzinfo=UTC) - timedelta(minutes=3 * i)
        if flavour == "sparkov":
            tx_id = f"{rng.getrandbits(128):032x}"
            card = str(rng.randrange(10**15, 10**16))
            merchant = f"fraud_{rng.choice(['Rippin, Kub and Mann', 'Heller-Langosh', 'Lind'])}"
            category = rng.choice(["misc_net", "grocery_pos", "shopping_net"])
            fields: dict[str, Any] = {"category": category, "city_pop": 3495.0, "gender": "F"}
            entities = {"card": card, "merchant": merchant, "category": category}
            features: dict[str, Any] = {
                "amount": amount,
                "category": category,
                "card_count_1d": float(rng.randrange(1, 9)),
                "merchant_fraud_share_7d": round(rng.random() * 0.5, 4),
            }
        else:
            tx_id = str(900_000 - i)
            card, merchant = str(rng.randrange(0, 2000)), str(rng.randrange(0, 4000))
            fields, entities = {}, {"card": card, "terminal": merchant}
            features = {
                "TX_AMOUNT": amount,
                "CUSTOMER_ID_NB_TX_1DAY_WINDOW": float(rng.randrange(1, 9)),
                "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW": round(amount / rng.uniform(2, 9), 2),
                "TERMINAL_ID_RISK_7DAY_WINDOW": round(rng.random() * 0.5, 4),
            }
        row = {
            "transaction_id": tx_id,
            "card": card,
            "merchant": merchant,
            "amount": amount,
            "ts": int(when.timestamp()),
            "tx_datetime": when.strftime("%Y-%m-%d %H:%M:%S"),
            "fields": fields,
            "entities": entities,
            "action": action,
            "score": score,
            "scores": {
                "isolation_forest": round(rng.random(), 4),
                "logistic_regression": round(rng.random(), 4),
                "gradient_boosting": round(rng.random(), 4),
                "ensemble": score,
            },
            "reasons": [
                f"MODEL score {score:.4f} >= {action} threshold "
                f"{0.999 if action == 'block' else 0.99:.4f}",
                f"FEATURE amount {amount:.2f} is {rng.uniform(2, 9):.1f}x the card's "
                "30-day average",
            ],
            "model_version": MODEL_VERSION,
            "features": features,
            "ingested_ms": int(decided.timestamp() * 1000) - 40,
            "decided_at": decided.isoformat(timespec="milliseconds"),
            "status": "open",
            "label": None,
            "label_note": None,
            "labelled_at": None,
            "labelled_by": None,
        }
        if i % 3 == 2:
            row["status"] = "labelled"
            row["label"] = "fraud" if rng.random() < 0.6 else "legitimate"
            row["labelled_at"] = (decided + timedelta(minutes=2)).isoformat()
            row["labelled_by"] = "ana"
        rows.append(row)
    return rows


def models_body(pr_curve: bool = True) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "auc_roc": 0.873,
        "average_precision": 0.612,
        "card_precision_at_100": 0.281,
    }
    if pr_curve:
        recall = [i / 20 for i in range(21)]
        metrics["pr_curve"] = {
            "recall": recall,
            "precision": [max(0.05, 0.95 - 0.9 * r**1.5) for r in recall],
        }
    version = {
        "version": MODEL_VERSION,
        "active": True,
        "created_at": "2026-11-24T20:35:38+00:00",
        "code_version": "0.1.0",
        "detectors": list(DETECTORS),
        "feature_names": ["TX_AMOUNT"],
        "thresholds": {"review": 0.99, "block": 0.999},
        "training_window": {
            "start": "2018-06-16",
            "end_exclusive": "2018-06-23",
            "days": 7,
            "rows": 27138,
            "frauds": 613,
        },
        "holdout_metrics": metrics,
    }
    return {"active_version": MODEL_VERSION, "versions": [version]}


def metrics_text(allow: int = 12_000, review: int = 40, block: int = 20) -> str:
    return (
        "# HELP aegis_decisions_total Stream decisions stored by the sink, by action\n"
        "# TYPE aegis_decisions_total counter\n"
        f'aegis_decisions_total{{action="allow"}} {float(allow)}\n'
        f'aegis_decisions_total{{action="review"}} {float(review)}\n'
        f'aegis_decisions_total{{action="block"}} {float(block)}\n'
        'aegis_decisions_created{action="allow"} 1.7e9\n'
    )


class FakeClient:
    """The AegisClient interface over an in-memory list; `mode` simulates failures."""

    base_url = "http://fake-api"

    def __init__(self, rows: list[dict[str, Any]] | None = None, mode: str = "ok") -> None:
        self.rows = copy.deepcopy(rows if rows is not None else decisions())
        self.mode = mode  # ok | down | bad-token | bad-token-writes
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.labels: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []  # GET /v1/rules items

    def _check(self, write: bool = False) -> None:
        if self.mode == "down":
            raise ApiUnavailable(
                f"Cannot reach the Aegis API at {self.base_url}. Check that it is running."
            )
        if self.mode == "bad-token" or (write and self.mode == "bad-token-writes"):
            raise ApiUnauthorized(
                "The token given to the page was refused (HTTP 401). Restart the page with "
                "`aegis dashboard --token <token>`.",
                status=401,
            )

    def alerts(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("alerts", params))
        self._check()
        action = params.get("action")
        actions = [action] if isinstance(action, str) else (action or ["review", "block"])
        items = [
            r
            for r in self.rows
            if r["action"] in actions
            and (params.get("status") is None or r["status"] == params["status"])
            and r["score"] >= params.get("min_score", 0.0)
            and r["score"] <= params.get("max_score", 1.0)
            and (params.get("since") is None or r["decided_at"] >= params["since"])
        ]
        limit, offset = params.get("limit", 50), params.get("offset", 0)
        page = items[offset : offset + limit]
        return {
            "items": copy.deepcopy(page),
            "total": None,
            "more": offset + len(page) < len(items),
        }

    def alert(self, transaction_id: str) -> dict[str, Any]:
        self._check()
        for row in self.rows:
            if row["transaction_id"] == transaction_id:
                return copy.deepcopy(row)
        raise ApiNotFound(f"No alert {transaction_id} found (HTTP 404).", status=404)

    def label(self, transaction_id, label, note=None, analyst=None) -> dict[str, Any]:
        self.calls.append(("label", {"transaction_id": transaction_id, "label": label}))
        self._check(write=True)
        for row in self.rows:
            if row["transaction_id"] == transaction_id:
                row.update(
                    status="labelled",
                    label=label,
                    label_note=note,
                    labelled_by=analyst,
                    labelled_at=datetime.now(UTC).isoformat(),
                )
                self.labels.append({"transaction_id": transaction_id, "label": label, "note": note})
                return {"alert": copy.deepcopy(row), "published": True}
        raise ApiNotFound(f"No alert {transaction_id} found (HTTP 404).", status=404)

    def label_many(self, transaction_ids, label, note=None, analyst=None) -> dict[str, Any]:
        self.calls.append(("label_many", {"transaction_ids": list(transaction_ids)}))
        self._check(write=True)
        known = {r["transaction_id"] for r in self.rows}
        done = [tx for tx in dict.fromkeys(transaction_ids) if tx in known]
        for tx in done:
            self.label(tx, label, note=note, analyst=analyst)
        missing = [tx for tx in transaction_ids if tx not in known]
        return {"labelled": done, "not_found": missing, "published": len(done)}

    def list_rules(self, state: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list_rules", {"state": state}))
        self._check()
        return copy.deepcopy(self.rules)

    def card(self, card_id: str) -> dict[str, Any]:
        self.calls.append(("card", {"card": card_id}))
        self._check()
        recent = [r for r in self.rows if r["card"] == card_id]
        latest = recent[0]["features"] if recent else None
        return {
            "card": card_id,
            "found": bool(recent),
            "as_of": recent[0]["tx_datetime"] if recent else None,
            "events": len(recent),
            "features": copy.deepcopy(latest),
            "recent_decisions": copy.deepcopy(recent),
        }

    def models(self) -> dict[str, Any]:
        self._check()
        return models_body()

    def metrics_text(self) -> str:
        self._check()
        return metrics_text()
