# syntax=docker/dockerfile:1.7
# One image recipe for every mdp service. Build from the repository root:
#
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=processor -t mdp-processor .
#
# SERVICE is the folder under services/ (listener, news-listener, processor, news-processor,
# scanner, widget-service, control-plane, platform). OTEL=1 adds the OpenTelemetry SDK and OTLP
# exporter (configured at run time from the standard OTEL_* variables); OTEL=0 images carry the
# API only. Pin the base images by digest in your registry mirror for reproducible builds.
#
# The image is built from exactly two inputs of ours, each computed in the throwaway `inputs`
# stage and copied by content (so BuildKit's cache keys on what is copied, not on the tree):
#   1. requirements.txt: this service's locked third-party packages (uv export, no workspace
#      members), so a version bump or another service's new dependency does not rerun it;
#   2. src/: only the workspace members in this service's dependency closure, so an edit in a
#      package the service does not use leaves its image alone.
# `python3 dev.py images` digests the same inputs (tools/mdp_images.py) to tag every image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS inputs
ARG SERVICE
ARG OTEL=0
COPY --from=uv /uv /bin/
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY packages ./packages
COPY services ./services
COPY tools/mdp_images.py ./tools/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN package="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["name"])' "services/${SERVICE}/pyproject.toml")" && \
    extras=() && \
    if [ "$OTEL" = "1" ]; then extras=(--extra otel); fi && \
    mkdir -p /inputs && \
    uv export --package "$package" --frozen --no-emit-workspace --no-default-groups \
        --no-header --no-annotate "${extras[@]}" --output-file /inputs/requirements.txt && \
    python3 tools/mdp_images.py stage "$SERVICE" /inputs/src > /inputs/members.txt

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
COPY --from=uv /uv /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN uv venv /app/.venv
# Layer 1: the locked third-party packages, hash-checked.
COPY --from=inputs /inputs/requirements.txt /build/requirements.txt
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /app/.venv/bin/python --require-hashes --no-deps \
        -r /build/requirements.txt
# Layer 2: the closure members, built and installed as wheels (not editable).
COPY --from=inputs /inputs/src /build/src
COPY --from=inputs /inputs/members.txt /build/members.txt
WORKDIR /build/src
RUN --mount=type=cache,target=/root/.cache/uv \
    mapfile -t members < /build/members.txt && \
    uv pip install --python /app/.venv/bin/python --no-deps --no-sources "${members[@]}" && \
    script="$(python3 -c 'import sys, tomllib; print(next(iter(tomllib.load(open(sys.argv[1], "rb"))["project"]["scripts"])))' "services/${SERVICE}/pyproject.toml")" && \
    ln -s "/app/.venv/bin/${script}" /app/.venv/bin/service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="mdp-${SERVICE}" \
      org.opencontainers.image.source="https://example.invalid/mdp" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mdp && useradd --system --uid 10001 --gid mdp --no-create-home mdp
COPY --from=builder --chown=mdp:mdp /app/.venv /app/.venv
COPY LICENSE /usr/share/licenses/mdp/LICENSE
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    MDP_HEALTH_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080
# Exec form: the service is PID 1 and receives SIGTERM directly for a graceful drain.
ENTRYPOINT ["/app/.venv/bin/service"]
