"""Sections of the analyst page; each renders into the current Streamlit container."""
