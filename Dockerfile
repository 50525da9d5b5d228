# Relayboard gateway in a container. See docs/deploy.md.
#
#   docker build -t relayboard .
#   docker run -d --name relayboard --init --restart unless-stopped \
#       -v relayboard-home:/data --env-file ./relayboard.env relayboard
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RELAYBOARD_HOME=/data

# git: for tasks with `--workspace worktree`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

# Only what the package needs: no virtualenvs, databases or secrets from the build context.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kanban ./kanban
COPY platforms ./platforms
COPY gateway ./gateway
RUN pip install . && rm -rf /src

RUN useradd --create-home --uid 10001 relayboard \
    && mkdir /data && chown relayboard:relayboard /data
USER relayboard
WORKDIR /data
# The home: config.yaml, boards, profiles, logs, attachments.
VOLUME ["/data"]
# The dashboard, if configured to listen beyond loopback (needs dashboard.token_env).
EXPOSE 8765

STOPSIGNAL SIGTERM
CMD ["relayboard", "gateway", "run"]
