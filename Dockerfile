# syntax=docker/dockerfile:1
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/acedata-proxy

COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN pip install -c constraints.txt . && useradd --system --uid 10001 proxy \
    && mkdir -p /var/lib/acedata-proxy && chown proxy /var/lib/acedata-proxy

# The usage ledger (SQLite); mount a volume here so spend and budgets survive a new container
ENV PROXY_DATA_DIR=/var/lib/acedata-proxy
VOLUME /var/lib/acedata-proxy

USER proxy
EXPOSE 8000
# Binds loopback by default: as a sidecar sharing the app's network namespace that is all it needs. To serve
# other containers, set PROXY_HOST=0.0.0.0 together with PROXY_KEYS_FILE.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PROXY_PORT', '8000'), timeout=2)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["acedata-proxy"]
CMD ["serve"]
