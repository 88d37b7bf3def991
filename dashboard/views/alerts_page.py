"""The alert queue page: sidebar filters, the queue with the open alert's detail (refreshed
every few seconds), then the KPIs, monitoring charts, drift and the model."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import config, shaping
from dashboard.views import bulk, common, detail, drift, filters, model, monitoring, queue


def render(client: Any, names: shaping.RecordNames, cfg: config.DashboardConfig) -> None:
    rules = common.guarded(client.list_rules, quiet=True) or []
    chosen = filters.render(getattr(client, "base_url", cfg.api_url), rules)

    st.title(":material/shield: Aegis — fraud alert review")
    kpi_row = st.container()

    def live_queue() -> None:
        """Queue and detail: refreshed every few seconds, and at once after a label."""
        common.show_flash()
        try:
            page = client.alerts(**chosen.params(), limit=chosen.limit)
        except Exception as exc:  # noqa: BLE001 - friendly message, retried on the next tick
            common.show_api_error(exc)
            return
        left, right = st.columns([11, 9], gap="large")
        with left:
            fetched = queue.QueuePage(
                view=(chosen.params(), chosen.limit),
                items=page["items"],
                total=page["total"],
                more=page.get("more", False),
            )
            selected = queue.render(fetched, names)
            bulk.render(client, st.session_state.get(queue.SELECTED_KEY, []), chosen.analyst)
        with right, st.container(border=True):
            detail.render(client, selected, chosen.analyst, names)

    def live_monitoring() -> None:
        """KPIs, charts and the model: refreshed less often."""
        counts = monitoring.record_metrics(client)
        window = {k: v for k, v in chosen.params().items() if k == "since"}
        recent = common.guarded(lambda: monitoring.fetch_sample(client, **window), quiet=True)
        labelled = common.guarded(
            lambda: monitoring.fetch_sample(client, status="labelled"), quiet=True
        )
        open_page = common.guarded(
            lambda: client.alerts(status="open", limit=monitoring.SAMPLE_LIMITS[-1]), quiet=True
        )
        models_body = common.guarded(client.models, quiet=True)
        if recent is None and counts is None:
            st.info("Charts appear when the API is reachable.", icon=":material/monitoring:")
            return
        active = shaping.active_model(models_body)
        monitoring.kpis(
            kpi_row,
            counts,
            monitoring.open_count(open_page),
            shaping.labelled_summary(labelled or []),
            active.get("version") if active else None,
        )

        st.divider()
        st.subheader("Monitoring")
        top_left, top_right = st.columns(2, gap="large")
        with top_left:
            monitoring.throughput_chart()
        with top_right:
            monitoring.alerts_chart(recent or [])
        bottom_left, bottom_right = st.columns(2, gap="large")
        with bottom_left:
            monitoring.score_chart(recent or [])
        with bottom_right:
            monitoring.precision_chart(labelled or [])
        st.divider()
        drift.render(client)
        st.divider()
        model.render(models_body, cfg.model_dir)

    queue_every = config.QUEUE_REFRESH_S if chosen.auto_refresh else None
    charts_every = config.CHARTS_REFRESH_S if chosen.auto_refresh else None
    st.fragment(live_queue, run_every=queue_every)()
    st.fragment(live_monitoring, run_every=charts_every)()
