# syntax=docker/dockerfile:1.7
# One image recipe for every mdp service. Build from the repository root:
#
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=processor -t mdp-processor .
#
# SERVICE is the folder under services/ (listener, news-listener, processor, news-processor,
# scanner, widget-service, control-plane). OTEL=1 adds the OpenTelemetry SDK and OTLP exporter
# (configured at run time from the standard OTEL_* variables); OTEL=0 images carry the API only.
# Pin the base images by digest in your registry mirror for reproducible builds.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9

FROM ${UV_IMAGE} AS uv

# Only the project manifests: the dependency layer below is keyed on this stage's output, so
# editing code never rebuilds it; changing a pyproject.toml or uv.lock does.
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY packages ./packages
COPY services ./services
RUN find packages services -type f ! -name pyproject.toml -delete && \
    find packages services -type d -empty -delete

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ARG OTEL=0
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_DEV=1 \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies layer first, from the manifests alone: code edits do not rebuild it, and it
# installs only this service's locked dependencies.
COPY --from=manifests /src/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    package="$(sed -n 's/^name = "\(.*\)"/\1/p' services/${SERVICE}/pyproject.toml | head -n1)" && \
    extras="$([ "$OTEL" = "1" ] && echo --extra otel || true)" && \
    uv sync --frozen --no-install-workspace --no-default-groups --package "$package" $extras
# Then the code of just this service and the packages (installed as wheels, not editable).
COPY pyproject.toml uv.lock ./
COPY packages ./packages
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    package="$(sed -n 's/^name = "\(.*\)"/\1/p' services/${SERVICE}/pyproject.toml | head -n1)" && \
    extras="$([ "$OTEL" = "1" ] && echo --extra otel || true)" && \
    uv sync --frozen --no-editable --no-default-groups --package "$package" $extras && \
    script="$(sed -n '/^\[project.scripts\]/{n;s/^\([a-z0-9-]*\) = .*/\1/p}' services/${SERVICE}/pyproject.toml)" && \
    ln -s "/app/.venv/bin/$script" /app/.venv/bin/service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="mdp-${SERVICE}" \
      org.opencontainers.image.source="https://example.invalid/mdp" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mdp && useradd --system --uid 10001 --gid mdp --no-create-home mdp
COPY --from=builder --chown=mdp:mdp /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    MDP_HEALTH_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080
# Exec form: the service is PID 1 and receives SIGTERM directly for a graceful drain.
ENTRYPOINT ["/app/.venv/bin/service"]
