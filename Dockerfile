# edgefilter on the CPU: the README's quick start, command for command (tests/test_container.py checks that
# every RUN and the CMD below are the README's set-up lines). Build and run: see compose.yaml.
FROM python:3.11-slim-bookworm

WORKDIR /src
COPY . /src
# "python3 -m venv .venv && . .venv/bin/activate" from the README: the venv, and what activate does
# (its bin first on PATH) as ENV, since a shell's activation does not outlive one RUN.
RUN python3 -m venv .venv
ENV VIRTUAL_ENV=/src/.venv PATH=/src/.venv/bin:$PATH
RUN python -m pip install -e '.[cpu]'

# Not root; rolling indexes persist in a volume ($STATE_DIRECTORY, as systemd's StateDirectory= sets it).
RUN useradd --system --home-dir /var/lib/edgefilter --create-home edgefilter
USER edgefilter
ENV STATE_DIRECTORY=/var/lib/edgefilter PYTHONDONTWRITEBYTECODE=1
VOLUME /var/lib/edgefilter

# 5556: ZeroMQ frames and drift; 9108: /metrics, /healthz, /readyz (binds set in docker/config.yaml).
EXPOSE 5556 9108
# /healthz answers 503 (urlopen raises, exit 1) when a stage is stuck or a camera stopped reconnecting.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]
CMD ["edgefilter", "run", "-c", "config.yaml"]
