# Production image of the Forge gRPC server, plus (target `gateway`) an Envoy image carrying
# the same gateway/envoy.yaml and the descriptor set generated from protos/.

# --- generate code from protos ---------------------------------------------------------
FROM python:3.11-slim AS gen
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY clients/python/pyproject.toml clients/python/pyproject.toml
COPY server server
COPY gateway gateway
RUN python -m venv /src/.venv && /src/.venv/bin/pip install --no-cache-dir '.[dev]'
COPY protos protos
COPY scripts/gen scripts/gen
RUN scripts/gen

# --- the server ----------------------------------------------------------------------------
FROM python:3.11-slim AS server
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/app:/app/gen/python \
    FORGE_ENVIRONMENT=production FORGE_DATA_DIR=/var/lib/forge
WORKDIR /app
# git: the GitHub Pages deploy target pushes sites with it
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY server server
COPY gateway gateway
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --home /var/lib/forge forge \
    && mkdir -p /var/lib/forge && chown forge /var/lib/forge
COPY alembic.ini ./
COPY migrations migrations
COPY --from=gen /src/gen/python gen/python
USER forge
EXPOSE 50051
CMD ["python", "-m", "server"]

# --- Envoy with the REST gateway config ----------------------------------------------------
FROM envoyproxy/envoy:v1.40-latest AS gateway
WORKDIR /app
COPY gateway/envoy.yaml /etc/envoy/envoy.yaml
COPY --from=gen /src/gen/forge.binpb gen/forge.binpb
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
