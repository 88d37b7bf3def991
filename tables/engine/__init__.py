"""The feature engine compiled from the user's config (docs/FEATURES.md, "Feature kinds").

- plan: a Config compiled into per-entity plans (windows, kept fields, horizons);
- keys: canonical text and 64-bit hashes of ids and values;
- state: an entity's packed binary state (events and fraud labels), pruned on write;
- windows: the window arithmetic, one function per kind, shared by both paths;
- transaction: the per-transaction kinds (calendar, value, category, distance, age);
- stream: normalised records against packed states, one or a batch at a time (StreamEngine);
- batch: every row of a normalised frame at once (compute_features).
"""

from tables.engine.batch import compute_features
from tables.engine.plan import Plan, RecordError, compile_plan
from tables.engine.stream import EntityBatch, StateSize, StreamEngine

__all__ = [
    "EntityBatch",
    "Plan",
    "RecordError",
    "StateSize",
    "StreamEngine",
    "compile_plan",
    "compute_features",
]
