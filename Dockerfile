# syntax=docker/dockerfile:1.7
# One image for the asset service (`mm api`), the migrations (`mm db upgrade`), the Dagster user code
# (`dagster api grpc --module-name mm_pipelines.definitions`), its run pods and the Dagster webserver and daemon.
#
#   docker build -t registry.example.com/market-media/mm-pipelines:0.1.0 .
#
# Dependencies are exactly constraints.txt (name==version); the dbt manifest is parsed here, at build time, so a
# code location loads without parsing the dbt project. The image runs as uid 10001 with a read-only root
# filesystem: everything it writes goes under MM_HOME (/var/lib/mm) and /tmp, both emptyDir volumes in helm/.
# Release builds pin the base image by digest too (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:…).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with the package and its pinned dependencies, and the parsed dbt project ---------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for a dependency without a wheel for this platform; none of it reaches the runtime stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first (their layer is reused while only the code changes), then the package itself.
COPY constraints.txt setup.py ./
RUN pip install -c constraints.txt --upgrade pip wheel setuptools
COPY mm_pipelines ./mm_pipelines
RUN pip install -c constraints.txt . \
    && pip check

# The dbt manifest, prepared as the platform prepares it (mm_pipelines.assets.dbt.mm_dbt_project: `mm-dbt parse`
# into $MM_HOME/dbt/target); parsing needs no warehouse. The entrypoint seeds each pod's MM_HOME from it.
COPY dbt_project /opt/mm/dbt_project
RUN MM_HOME=/tmp/mm-build MM_DBT_PROJECT_DIR=/opt/mm/dbt_project \
        python -c "from mm_pipelines.assets.dbt import mm_dbt_project; mm_dbt_project()" \
    && mkdir -p /opt/mm/dbt-target \
    && cp -p /tmp/mm-build/dbt/target/manifest.json /tmp/mm-build/dbt/target/partial_parse.msgpack /opt/mm/dbt-target/ \
    && rm -rf /tmp/mm-build

# Seeds MM_HOME (an empty emptyDir in a pod) with the build-time dbt artifacts, keeping their mtimes (dbt compares
# them with the models'), then runs the command.
COPY --chmod=0755 <<'EOF' /opt/mm/bin/mm-entrypoint
#!/bin/sh
set -eu
target="${MM_HOME:?MM_HOME must be set}/dbt/target"
if [ ! -e "$target/manifest.json" ]; then
    mkdir -p "$target"
    cp -p /opt/mm/dbt-target/manifest.json /opt/mm/dbt-target/partial_parse.msgpack "$target/"
fi
mkdir -p "${DAGSTER_HOME:-$MM_HOME/dagster}"
exec "$@"
EOF

# --- runtime: the virtualenv, the dbt project and its manifest; no compiler, no package manager cache ------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="mm-pipelines" \
      org.opencontainers.image.description="Market & Media data platform: API, migrations, Dagster user code" \
      org.opencontainers.image.source="https://github.com/market-media/mm-pipelines"

# A numeric, non-root user (Kubernetes' runAsNonRoot can only verify a numeric USER).
RUN groupadd --system --gid 10001 mm \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mm --no-create-home --shell /usr/sbin/nologin mm \
    && mkdir -p /var/lib/mm \
    && chown 10001:10001 /var/lib/mm

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/mm /opt/mm

# HOME and MM_HOME point at the writable state folder (an emptyDir under a read-only root filesystem).
ENV PATH=/opt/venv/bin:/opt/mm/bin:$PATH \
    HOME=/var/lib/mm \
    MM_HOME=/var/lib/mm \
    DAGSTER_HOME=/var/lib/mm/dagster \
    MM_DBT_PROJECT_DIR=/opt/mm/dbt_project \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /var/lib/mm

# 8600: `mm api`; 3030: the Dagster code server; 3000: the Dagster webserver.
EXPOSE 8600 3030 3000

ENTRYPOINT ["/opt/mm/bin/mm-entrypoint"]
CMD ["mm", "api", "--host", "0.0.0.0", "--port", "8600"]
