"""/metrics, /healthz and /readyz on a running gateway's real HTTP server, scraped for real.

Workers are real processes (tests/kanban/workers/agent.py) reporting through the gateway's worker
API; the scrape is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import load_config
from gateway.daemon import Backoff, Daemon
from gateway.notifier import NotifierSettings
from kanban.agents.profiles import Profiles
from platforms.base import InboundMessage, PlatformAdapter
from platforms.errors import TransientError
from platforms.fake import FakeAdapter
from platforms.receipts import Receipt
from tests.kanban.workers.harness import AGENT_PATHS, agent, wait_until

FAST_BACKOFF = Backoff(base=0.01, cap=0.05, steady_seconds=5.0)
TOKEN = "s3cret-dashboard-token"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@asynccontextmanager
async def gateway(home: Path, config_text: str,
                  adapters: Mapping[str, Callable[[], PlatformAdapter]],
                  environ: Mapping[str, str] | None = None,
                  notifier: NotifierSettings | None = None) -> AsyncIterator[Daemon]:
    """A gateway on ``home`` with its dashboard on a free loopback port, until the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(config_text, encoding="utf-8")
    env = {**os.environ, **(environ or {})}
    daemon = Daemon(load_config(None, env, home=home), environ=env, adapters=adapters,
                    backoff=FAST_BACKOFF, user_home=home / "user", dashboard=True,
                    notifier_settings=notifier or NotifierSettings(backoff_base=0.01,
                                                                   tick_seconds=0.2))
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(daemon.run, stop)
        with anyio.fail_after(10):
            await daemon.ready.wait()
        try:
            yield daemon
        finally:
            stop.set()
    await daemon.dispatcher.aclose(terminate=True)


async def base_url(daemon: Daemon) -> str:
    assert daemon.dashboard is not None

    async def bound() -> str | None:
        return daemon.dashboard.url if daemon.dashboard is not None else None

    return await wait_until(bound, within=10, what="the dashboard listening")


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_a_scrape_shows_what_the_gateway_did(tmp_path: Path) -> None:
    home = tmp_path / "home"
    profiles = Profiles(home)
    profiles.create("w", command=agent("complete", "all good"), read_paths=AGENT_PATHS)
    profiles.create("bad", command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    profiles.create("slow", command=agent("sleep", "60"), read_paths=AGENT_PATHS)
    fake = FakeAdapter(platform="fake")
    flaky = FakeAdapter(platform="flaky")
    flaky.script_failures(50, Receipt.failed("platform down", retryable=True))
    config = ("kanban: {auto_decompose: false, failure_limit: 1}\n"
              "dashboard: {port: 0}\n")
    # A failed notification is retried half a minute later: it stays in the outbox meanwhile.
    notifier = NotifierSettings(backoff_base=30.0, tick_seconds=0.2)
    async with gateway(home, config, {"fake": lambda: fake, "flaky": lambda: flaky},
                       notifier=notifier) as daemon:
        url = await base_url(daemon)
        board = await daemon.boards.open("default")
        ok = (await board.create_task("completes")).task
        await board.subscribe(ok.id, platform="fake", chat="c1")
        await board.subscribe(ok.id, platform="flaky", chat="c2")
        await board.assign(ok.id, "w")
        crashing = (await board.create_task("crashes", assignee="bad")).task
        slow = (await board.create_task("keeps running", assignee="slow")).task

        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async def settled() -> Samples | None:
                states = {t.id: t.status for t in await board.list_tasks()}
                if (states.get(ok.id), states.get(crashing.id), states.get(slow.id)) != (
                        "done", "blocked", "running") or not fake.texts:
                    return None
                response = await client.get("/metrics")
                assert response.status_code == 200, response.text
                samples = parse(response.text)
                counted = (value(samples, "relayboard_task_completions_total",
                                 board="default") == 1
                           and value(samples, "relayboard_breaker_trips_total",
                                     board="default") == 1
                           and value(samples, "relayboard_workers_running",
                                     board="default") == 1
                           and value(samples, "relayboard_sends_total", platform="flaky",
                                     result="failed") == 1
                           and value(samples, "relayboard_claim_to_start_seconds_count",
                                     board="default") == 3)
                return samples if counted else None

            samples = await wait_until(settled, within=30, what="the work counted in a scrape")
            head = await client.head("/metrics")
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/plain; version=")
            # Prometheus asking for OpenMetrics gets it.
            open_metrics = await client.get("/metrics", headers={
                "accept": "application/openmetrics-text; version=1.0.0"})
            assert open_metrics.headers["content-type"].startswith("application/openmetrics")
            assert open_metrics.text.rstrip().endswith("# EOF")

    def at(name: str, **labels: str) -> float | None:
        return value(samples, name, **labels)

    # Tasks by board and status, computed at scrape time (every status present, 0 or not).
    assert {s: at("relayboard_tasks", board="default", status=s) for s in (
        "done", "blocked", "running", "ready", "triage")} == {
        "done": 1.0, "blocked": 1.0, "running": 1.0, "ready": 0.0, "triage": 0.0}
    # Counters from the board's event log.
    assert at("relayboard_task_claims_total", board="default") == 3
    assert at("relayboard_task_failures_total", board="default", kind="crashed") == 1
    assert at("relayboard_task_failures_total", board="default", kind="timed_out") == 0
    # Latencies: every claim started a worker; one completion reached one chat so far.
    assert at("relayboard_claim_to_start_seconds_bucket", board="default", le="+Inf") == 3
    assert 0 < (at("relayboard_claim_to_start_seconds_sum", board="default") or 0) < 30
    assert at("relayboard_completion_to_notification_seconds_count", platform="fake") == 1
    assert at("relayboard_completion_to_notification_seconds_count", platform="flaky") is None
    # Sends per platform and result (completed + gave_up reached no chat but fake's).
    assert at("relayboard_sends_total", platform="fake", result="delivered") == 1
    assert at("relayboard_sends_total", platform="fake", result="failed") == 0
    # The outbox: the flaky chat's row waits for its retry.
    assert at("relayboard_outbox_pending", board="default") == 1
    assert (at("relayboard_outbox_oldest_pending_age_seconds", board="default") or 0) > 0
    # Adapters, leadership (SQLite: always this gateway), components.
    assert at("relayboard_adapter_state", platform="fake", state="connected") == 1
    assert at("relayboard_adapter_state", platform="fake", state="retrying") == 0
    assert at("relayboard_leader") == 1 and at("relayboard_leadership_shared") == 0
    assert at("relayboard_component_up", component="dispatcher") == 1
    assert at("relayboard_component_restarts_total", component="notifier") == 0
    assert at("relayboard_board_up", board="default") == 1


class SlowToConnect(FakeAdapter):
    """Connects only once ``gate`` is set."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(platform="slow")
        self.gate = gate

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        await self.gate.wait()
        await super().start(inbox)


async def test_readyz_waits_for_an_adapter_to_connect_healthz_does_not(tmp_path: Path) -> None:
    gate = asyncio.Event()
    slow = SlowToConnect(gate)
    async with gateway(tmp_path / "home", "dashboard: {port: 0}\n",
                       {"slow": lambda: slow}) as daemon:
        url = await base_url(daemon)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            health = await client.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503
            assert waiting.json() == {"status": "not ready",
                                      "reasons": ["adapter slow: connecting"]}
            assert waiting.headers["cache-control"] == "no-store"
            gate.set()

            async def ready() -> httpx.Response | None:
                response = await client.get("/readyz")
                return response if response.status_code == 200 else None

            answer = await wait_until(ready, within=10, what="ready once connected")
            assert answer.json() == {"status": "ready"}
            # An adapter that loses its connection is retrying: still ready (its state is in
            # /metrics), since restarting the gateway cannot bring a platform back.
            slow.fail_connects(10_000, TransientError("platform down"))
            slow.lose_connection(TransientError("gone"))

            async def retrying() -> bool:
                return daemon.runners["slow"].state.state == "retrying"

            await wait_until(retrying, within=10, what="the adapter retrying")
            assert (await client.get("/readyz")).status_code == 200


async def test_with_a_token_metrics_needs_it_and_the_probes_reveal_only_status(
    tmp_path: Path,
) -> None:
    config = "dashboard: {port: 0, token_env: DASH_TOKEN}\n"
    async with gateway(tmp_path / "home", config, {}, environ={"DASH_TOKEN": TOKEN}) as daemon:
        url = await base_url(daemon)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            refused = await client.get("/metrics")
            assert refused.status_code == 401
            assert "relayboard_" not in refused.text
            wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
            scraped = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200 and "relayboard_tasks" in scraped.text
            # Probes answer without the token, and say nothing but their status.
            for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
                probe = await client.get(path)
                assert (probe.status_code, probe.json()) == (200, body), path
                assert (await client.head(path)).status_code == 200
            # Writing to a probe path is not a way around the token.
            posted = await client.post("/readyz")
            assert posted.status_code == 401
            # The dashboard itself still needs it.
            assert (await client.get("/api/session")).status_code == 401


async def test_a_dashboard_run_alone_has_no_operator_endpoints(tmp_path: Path) -> None:
    from gateway.dashboard import create_app

    home = tmp_path / "home"
    config = load_config(None, {}, home=home)
    app = create_app(home, config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (await client.get(path)).status_code == 404, path


async def test_two_gateways_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    first_fake, second_fake = FakeAdapter(platform="fake"), FakeAdapter(platform="fake")
    async with gateway(tmp_path / "a", "dashboard: {port: 0}\n", {"fake": lambda: first_fake}
                       ) as first, gateway(tmp_path / "b", "dashboard: {port: 0}\n",
                                           {"fake": lambda: second_fake}) as second:
        first.metrics.sent("fake", [Receipt.delivered(["1"])])
        one = parse((await first.metrics.exposition())[0].decode())
        other = parse((await second.metrics.exposition())[0].decode())
    assert value(one, "relayboard_sends_total", platform="fake", result="delivered") == 1
    assert value(other, "relayboard_sends_total", platform="fake", result="delivered") == 0
