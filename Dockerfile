# syntax=docker/dockerfile:1
# acedata-proxy's image. Configured only through the environment and mounted files (see README "Container image").
#   docker build -t acedata-proxy .                                  # on python:3.12-slim
#   podman build --format docker --build-arg BASE_IMAGE=localhost/... # any Debian-like base with python3 + venv
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
# pip settings for offline builds (deploy/verify-image.sh passes a wheelhouse); unset, pip uses the package index
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
# A venv of its own: a Debian base's python refuses system-wide installs, and the venv is one directory to copy.
# Its pip is removed: the running gateway needs none, and it is 12 MB.
RUN python3 -m venv /opt/acedata-proxy \
 && /opt/acedata-proxy/bin/pip install -q -c constraints.txt . \
 && /opt/acedata-proxy/bin/pip uninstall -q -y pip

FROM ${BASE_IMAGE}
COPY --from=build /opt/acedata-proxy /opt/acedata-proxy
# A name no base ships (Debian's base-passwd has `proxy`, uid 13) and a uid above every system range. Its home holds
# what the gateway writes (a per-user data directory).
RUN groupadd --gid 10001 acedata-proxy \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/acedata-proxy --create-home \
        --shell /usr/sbin/nologin acedata-proxy
ENV PATH=/opt/acedata-proxy/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The usage ledger (SQLite, when no PROXY_REDIS_URL): mount a volume here so spend and budgets outlive a container.
ENV PROXY_DATA_DIR=/var/lib/acedata-proxy
VOLUME /var/lib/acedata-proxy
USER 10001:10001
WORKDIR /var/lib/acedata-proxy
# The gateway binds 127.0.0.1 unless told otherwise: enough as a sidecar sharing the app's network namespace. To
# serve other containers set PROXY_HOST=0.0.0.0 and mount a keys file (PROXY_KEYS_FILE); without one that bind is
# refused at start, since an open relay spends the team's balance.
EXPOSE 8000
# Finds the address the gateway actually listens on (PROXY_PORT or --port alike) and asks its /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD ["python", "-m", "app.serving.healthcheck"]
# SIGTERM drains: in-flight requests and streams get PROXY_SHUTDOWN_GRACE (30 s) to finish. Give the container a
# stop timeout a few seconds above it (docker/podman run --stop-timeout 35, compose stop_grace_period: 35s,
# Kubernetes terminationGracePeriodSeconds: 35); the engines' default of 10 s would cut streams.
STOPSIGNAL SIGTERM
ENTRYPOINT ["acedata-proxy"]
CMD ["serve"]
