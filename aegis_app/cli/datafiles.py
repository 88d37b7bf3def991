"""Transaction files for the commands that read one (train, evaluate, thresholds): in the
schema the command's config declares (the default preset, the Handbook simulator's, unless
--config / AEGIS_CONFIG names another), read by its source reader; their features come from
the feature engine, one path for every config."""

from __future__ import annotations

import sys
from pathlib import Path


def load_configured(path: Path, config):
    """A file in the config's schema, as the protocol's view of its normalised rows; rows
    that do not fit are reported on stderr (file:line: reason) and skipped."""
    from models.lifecycle.experiment import protocol_view

    return protocol_view(read_normalised(path, config))


def read_normalised(path: Path, config):
    """A file in the config's schema as normalised rows (aegis_app.core.source); rows that
    do not fit are reported on stderr (file:line: reason, the first 20) and skipped."""
    from aegis_app.core.source import SourceReader

    normalised, errors = SourceReader(config).read_file(path)
    for line, reason in errors[:20]:
        print(f"{path}:{line}: {reason}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} bad row(s) skipped", file=sys.stderr)
    return normalised
