# syntax=docker/dockerfile:1
# The Tideflow image: one image, three entry points, chosen by the container's command:
#   python -m tideflow.operator   the operator (the chart's operator Deployment)
#   python -m tideflow.api        the REST API (the chart's API Deployment; the default command)
#   python -m tideflow.runtime    a workflow's runtime (the Deployments the operator creates)
# Build: `make image` (docker build -t ghcr.io/tideflow/tideflow:<version> .).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install Tideflow and its runtime dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tideflow
# Dependencies first (pinned by constraints.txt), so that a source change does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir tideflow && touch tideflow/__init__.py \
    && /opt/tideflow/bin/pip install --constraint constraints.txt . \
    && /opt/tideflow/bin/pip uninstall --yes tideflow \
    && rm -rf build tideflow.egg-info
COPY tideflow ./tideflow
RUN /opt/tideflow/bin/pip install --constraint constraints.txt --no-deps . \
    # Compile now: the root filesystem is read-only at run time.
    && /opt/tideflow/bin/python -m compileall -q /opt/tideflow/lib \
    # Every entry point imports with the production dependencies alone (no dev or sandbox extras).
    && /opt/tideflow/bin/python -c "import tideflow.operator.main, tideflow.runtime.server, tideflow.api.app" \
    # No installer in the virtualenv the final image runs.
    && /opt/tideflow/bin/python -m pip uninstall --yes pip setuptools

# --- final: the virtualenv on a clean slim base, run as an unprivileged user ------------------------
FROM ${PYTHON_IMAGE}
# The same id as the chart's and the runtime pods' runAsUser (tests/unit/chart checks that they agree).
ARG UID=10001
LABEL org.opencontainers.image.title="tideflow" \
      org.opencontainers.image.description="Kubernetes-native workflow automation: operator, runtime and API" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid ${UID} tideflow \
    && useradd --system --uid ${UID} --gid ${UID} --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tideflow
COPY --from=build /opt/tideflow /opt/tideflow
ENV PATH=/opt/tideflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
# A numeric user, so that the kubelet can check runAsNonRoot without reading /etc/passwd.
USER ${UID}:${UID}
# The API's default port; the runtime listens on 8080, the operator serves 8081 (health) and 9090 (metrics).
EXPOSE 8000
CMD ["python", "-m", "tideflow.api"]
