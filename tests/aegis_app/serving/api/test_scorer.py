"""ApiScorer: where a batch is scored (the loop for a few rows, the thread otherwise, and
the thread whenever a model may have to be loaded), and that both give the same decision."""

from __future__ import annotations

import asyncio
import threading

from aegis_app.serving.api import scoring
from aegis_app.serving.api.scoring import INLINE_BATCH_MAX, ApiScorer
from models.decisions.policy import Rules


def _tx(i: int) -> dict:
    """A normalised record (aegis_app.core.source) of the Handbook config."""
    return {
        "transaction_id": str(i),
        "card": "1",
        "merchant": "2",
        "amount": 10.0 + i,
        "ts": 1522576800,
        "label": None,
    }


def _decide_all(scorer: ApiScorer, n: int) -> tuple[list[dict], set[str]]:
    names = scorer.model.config.feature_names
    threads: set[str] = set()
    score = scorer._score

    def recording_score(batch):
        threads.add(threading.current_thread().name)
        return score(batch)

    scorer._score = recording_score
    features = dict.fromkeys(names, 1.0)

    async def scenario():
        scorer.start()
        try:
            return await asyncio.gather(*(scorer.decide(_tx(i), features, 0) for i in range(n)))
        finally:
            await scorer.stop()

    return asyncio.run(scenario()), threads


def test_a_first_request_loads_the_model_in_the_thread(model_dir):
    decisions, threads = _decide_all(ApiScorer(model_dir, Rules()), 1)
    assert [d["transaction_id"] for d in decisions] == ["0"]
    # each decision names its entity keys (the config's), for labels
    assert decisions[0]["entities"] == {"card": "1", "terminal": "2"}
    assert all(name.startswith("aegis-api-score") for name in threads)


def test_small_batches_score_on_the_loop_large_ones_in_the_thread(model_dir):
    scorer = ApiScorer(model_dir, Rules(), batch_size=64)
    scorer.maybe_reload(force=True)  # loaded and freshly checked: no reload is due
    small, small_threads = _decide_all(scorer, INLINE_BATCH_MAX)
    assert small_threads == {threading.main_thread().name}

    scorer = ApiScorer(model_dir, Rules(), batch_size=64)
    scorer.maybe_reload(force=True)
    large, large_threads = _decide_all(scorer, INLINE_BATCH_MAX + 20)
    assert any(name.startswith("aegis-api-score") for name in large_threads)
    # Same transactions, same model: the same scores wherever they were computed.
    by_id = {d["transaction_id"]: d["score"] for d in large}
    assert [d["score"] for d in small] == [by_id[str(i)] for i in range(INLINE_BATCH_MAX)]


def test_a_due_model_check_never_runs_on_the_loop(model_dir, monkeypatch):
    scorer = ApiScorer(model_dir, Rules())
    scorer.maybe_reload(force=True)
    monkeypatch.setattr(scoring, "MODEL_POLL_SECONDS", 0.0)  # every batch: check ACTIVE
    _decisions, threads = _decide_all(scorer, 1)
    assert all(name.startswith("aegis-api-score") for name in threads)
