# Relayboard gateway in a container, installed from the wheel. See docs/deploy.md.
#
#   docker build -t relayboard .
#   docker run -d --name relayboard --init --restart unless-stopped \
#       -v relayboard-home:/data --env-file ./relayboard.env relayboard

# ---- build: the wheel, exactly as `python -m build` makes it for PyPI -------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "build>=1.2"
WORKDIR /src
# Only what the package is made of: no virtualenvs, databases or secrets from the context.
COPY pyproject.toml README.md ./
COPY kanban ./kanban
COPY platforms ./platforms
COPY gateway ./gateway
RUN python -m build --wheel --outdir /dist

# ---- run: the wheel installed, nothing else from the source tree ------------------------------
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

COPY --from=build /dist/ /tmp/dist/
RUN pip install /tmp/dist/relayboard-*.whl && rm -rf /tmp/dist \
    && relayboard --version

# An unprivileged user owns the home; the gateway never runs as root.
RUN useradd --create-home --uid 10001 relayboard \
    && mkdir /data && chown relayboard:relayboard /data && chmod 700 /data
USER relayboard
WORKDIR /data
# The home: config.yaml, boards, profiles, logs, attachments, backups.
VOLUME ["/data"]
# The dashboard, if configured to listen beyond loopback (needs dashboard.token_env).
EXPOSE 8765

STOPSIGNAL SIGTERM
CMD ["relayboard", "gateway", "run"]
