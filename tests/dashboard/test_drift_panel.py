"""The analyst page's drift panel under Streamlit's AppTest: a fake client for each state,
then the real API (aegis_app.serving.api) over a seeded SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.client import AegisClient, DriftUnavailable
from dashboard.views.common import CLIENT_KEY
from dashboard.views.drift import history_frame
from tests.dashboard.sample_data import MODEL_VERSION, FakeClient

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TOKEN = "drift-token"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def window(day: int, score_psi: float, amount_psi: float, n: int = 500) -> dict[str, Any]:
    features = {"TX_AMOUNT": amount_psi, "TX_HOUR": 0.02, "TX_DURING_NIGHT": 0.01}
    top = sorted(features.items(), key=lambda kv: kv[1], reverse=True)
    worst = max(score_psi, amount_psi)
    return {
        "start": f"2018-08-0{day} 12:00:00",
        "end": f"2018-08-0{day + 1} 12:00:00",
        "n": n,
        "n_scores": n,
        "sampled": False,
        "score_psi": score_psi,
        "feature_psi": features,
        "max_feature": top[0][0],
        "max_feature_psi": top[0][1],
        "top_features": [{"feature": k, "psi": v} for k, v in top],
        "threshold": 0.25,
        "level": "significant" if worst >= 0.25 else "stable",
        "enough_data": n >= 200,
        "alert": n >= 200 and worst >= 0.25,
    }


def body(last_amount_psi: float) -> dict[str, Any]:
    windows = [window(d, 0.03, 0.05) for d in range(1, 4)]
    windows.append(window(4, 0.04, last_amount_psi))
    return {
        "model_version": MODEL_VERSION,
        "threshold": 0.25,
        "moderate": 0.1,
        "hours": 24,
        "latest_tx_datetime": "2018-08-05 11:59:59",
        "reference_rows": 27138,
        "alert": windows[-1]["alert"],
        "windows": windows,
    }


class DriftClient(FakeClient):
    """FakeClient with a /v1/drift answer (a body, or an exception to raise)."""

    def __init__(self, answer: dict[str, Any] | Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answer = answer

    def drift(self, hours: int = 24, windows: int = 7) -> dict[str, Any]:
        self.calls.append(("drift", {"hours": hours, "windows": windows}))
        self._check()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run_page(client: Any) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[CLIENT_KEY] = client
    return at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_stable_windows_show_chart_and_figures_without_banner():
    client = DriftClient(body(last_amount_psi=0.06))
    at = run_page(client)
    assert not at.exception and not at.error
    assert "Drift" in [s.value for s in at.subheader]
    assert ("drift", {"hours": 24, "windows": 7}) in client.calls
    assert metric(at, "Score PSI (newest window)") == "0.040"
    assert metric(at, "Largest feature PSI") == "0.060"
    assert metric(at, "Decisions in the newest window") == "500"
    assert any(MODEL_VERSION in m.value for m in at.markdown)
    charts = [str(chart.proto) for chart in at.get("vega_lite_chart")]
    assert any("Window end" in spec for spec in charts)  # the PSI-per-window chart


def test_alerting_window_shows_a_red_banner_naming_the_feature():
    at = run_page(DriftClient(body(last_amount_psi=0.61)))
    assert not at.exception
    [banner] = [e.value for e in at.error]
    assert "Drift alert" in banner and "TX_AMOUNT (PSI 0.610)" in banner
    assert "2018-08-05 12:00:00" in banner and "retrain" in banner


def test_too_few_decisions_say_so_instead_of_alerting():
    answer = body(last_amount_psi=0.9)
    answer["windows"][-1] = window(4, 0.04, 0.9, n=40)
    at = run_page(DriftClient(answer))
    assert not at.exception and not at.error
    assert any("too few to raise a drift alert" in c.value for c in at.caption)


def test_no_reference_is_a_friendly_message():
    reason = "model v1 has no drift reference: retrain with `aegis train` to monitor drift"
    at = run_page(DriftClient(DriftUnavailable(reason, status=503)))
    assert not at.exception and not at.error
    assert any("retrain" in i.value and "not available" in i.value for i in at.info)


def test_no_decisions_yet():
    answer = {**body(0.0), "windows": [], "latest_tx_datetime": None, "alert": False}
    at = run_page(DriftClient(answer))
    assert not at.exception and not at.error
    assert any("No decisions stored yet" in c.value for c in at.caption)


def test_history_frame_keeps_the_score_and_the_features_that_moved_most():
    frame = history_frame(body(last_amount_psi=0.61), top=1)
    assert set(frame["Series"]) == {"Score", "TX_AMOUNT"}
    assert len(frame) == 8 and frame["PSI"].max() == pytest.approx(0.61)


# ---------------------------------------------------------------- the real API


@pytest.fixture
def real_api(tmp_path) -> Iterator[tuple[AegisClient, Path]]:
    """The real API app over 250 sample decisions (12.5 hours of event time)."""
    from fastapi.testclient import TestClient

    from tests.dashboard.api_stack import build_api

    app, store, _metrics, _published, model_dir = build_api(tmp_path, TOKEN, n=250)
    with TestClient(app, base_url="http://api.test") as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        client = AegisClient("http://api.test", TOKEN)
        client._http = http  # the ASGI app instead of a socket
        yield client, model_dir
    store.close()


def add_reference(model_dir: Path) -> None:
    """A drift reference in the seeded manifest: amounts like the sample decisions, terminal
    risk and scores far lower than theirs."""
    from models.lifecycle.drift import reference_profile

    rng = np.random.default_rng(0)
    n = 5000
    names = ["TX_AMOUNT", "TERMINAL_ID_RISK_7DAY_WINDOW"]
    X = np.column_stack([rng.lognormal(3.5, 1.0, n), rng.uniform(0.0, 0.05, n)])
    profile = reference_profile(X, names, rng.beta(1.0, 50.0, n))
    path = model_dir / "versions" / MODEL_VERSION / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["drift_reference"] = profile
    path.write_text(json.dumps(manifest))


def test_real_api_without_reference_then_with_one(real_api):
    client, model_dir = real_api
    at = run_page(client)
    assert not at.exception and not at.error
    assert any("no drift reference" in i.value and "aegis train" in i.value for i in at.info)

    add_reference(model_dir)
    at = run_page(client)  # a new session: nothing cached
    assert not at.exception
    [banner] = [e.value for e in at.error]
    assert "Drift alert" in banner and "TERMINAL_ID_RISK_7DAY_WINDOW" in banner
    assert "the score" in banner
    assert metric(at, "Decisions in the newest window") == "250"


def test_client_drift_sends_the_window_and_explains_a_503():
    import httpx

    answers = {
        "ok": httpx.Response(200, json=body(0.05)),
        "none": httpx.Response(503, json={"detail": "model v1 has no drift reference: retrain"}),
        "token": httpx.Response(401, json={"detail": "missing or wrong bearer token"}),
    }
    seen: list[httpx.Request] = []
    mode = {"now": "ok"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[mode["now"]]

    client = AegisClient("http://api.test/", "t", transport=httpx.MockTransport(handler))
    assert client.drift(hours=12, windows=3)["model_version"] == MODEL_VERSION
    assert seen[0].url.path == "/v1/drift"
    assert dict(seen[0].url.params) == {"hours": "12", "windows": "3"}
    mode["now"] = "none"
    with pytest.raises(DriftUnavailable) as info:
        client.drift()
    assert info.value.status == 503 and "no drift reference" in info.value.message
    mode["now"] = "token"
    from dashboard.client import ApiUnauthorized

    with pytest.raises(ApiUnauthorized):
        client.drift()
