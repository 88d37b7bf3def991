# The Aegis worker image (also runs `aegis api`, `aegis dashboard`, ... with another command).
FROM python:3.11-slim

# NUMBA_CACHE_DIR: the compiled tree traversal (models/detectors/packed_trees.py), compiled
# below at build time, so that a worker loads it (~0.2 s) instead of compiling it (~2.5 s).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AEGIS_DATA_DIR=/var/lib/aegis/state AEGIS_MODEL_DIR=/var/lib/aegis/models \
    NUMBA_CACHE_DIR=/opt/aegis/numba-cache

WORKDIR /opt/aegis
COPY setup.cfg pyproject.toml README.md ./
COPY aegis_app ./aegis_app
COPY agents ./agents
COPY tables ./tables
COPY models ./models
COPY dashboard ./dashboard
COPY configs ./configs
# -P: compile the installed package's code (the one `aegis` runs), not ./models. The cache
# stays writable by the worker: on a processor unlike the builder's, numba compiles anew
# and adds to it.
RUN pip install --no-cache-dir . \
    && python -P -c "from models.detectors.packed_trees import compile_ahead; compile_ahead()" \
    && useradd --system --home /var/lib/aegis aegis \
    && mkdir -p /var/lib/aegis/state /var/lib/aegis/models \
    && chown -R aegis /var/lib/aegis /opt/aegis/numba-cache
USER aegis
VOLUME ["/var/lib/aegis"]
# Faust web view (table state, alerts, health).
EXPOSE 6066
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/health/' % os.environ.get('AEGIS_WEB_PORT', '6066'))"
ENTRYPOINT ["aegis"]
CMD ["worker"]
