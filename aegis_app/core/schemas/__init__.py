"""Avro schemas of the records Aegis reads and writes, shipped as package data."""
