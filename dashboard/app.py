"""The Aegis analyst page (Streamlit): `aegis dashboard --port 8501`.

Layout only; data comes from the REST API through dashboard.client, shaping lives in
dashboard.shaping, and each section in dashboard.views. The record's parts are titled with
the names of the config (dashboard.config.record_names), the API's own.
"""

from __future__ import annotations

import streamlit as st

from aegis_app.core.config import ConfigError
from dashboard import config
from dashboard.views import alerts_page, common, rules

st.set_page_config(
    page_title="Aegis · fraud alerts",
    page_icon="🛡️",
    layout="wide",
    initial_sidebar_state="expanded",
)

cfg = config.load()
try:
    names = config.record_names()
except ConfigError as exc:
    st.error(
        f"**Config not usable.** {exc}. Start the page with `aegis --config FILE dashboard` "
        "(or set AEGIS_CONFIG) naming the config the API uses.",
        icon=":material/settings_alert:",
    )
    st.stop()
client = common.get_client()

pages = [
    st.Page(
        lambda: alerts_page.render(client, names, cfg),
        title="Alert queue",
        icon=":material/shield:",
        url_path="alerts",
        default=True,
    ),
    st.Page(
        lambda: rules.render(client),
        title="Rules",
        icon=":material/rule:",
        url_path="rules",
    ),
]
st.navigation(pages).run()
