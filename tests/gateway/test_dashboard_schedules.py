"""The dashboard's schedule API in process (httpx against the app): list with the next runs in
each schedule's zone, create, pause, resume, run now, remove; a task's run-now; every refusal as
one line with the status code of its class."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.gateway.test_dashboard_api import ORIGIN, Dash, make_app

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    home = tmp_path / "home"
    home.mkdir()
    app, _ = make_app(home, "kanban:\n  timezone: Europe/Berlin\n")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN,
                                     headers={"Origin": ORIGIN}) as client:
            yield Dash(home, app, client, app.state.dashboard.boards)


async def test_schedules_through_the_api(dash: Dash) -> None:
    session = await dash.ok("GET", "/api/session")
    assert session["timezone"] == "Europe/Berlin"
    assert await dash.ok("GET", "/api/schedules") == {"timezone": "Europe/Berlin",
                                                      "schedules": []}
    made = await dash.ok("POST", "/api/schedules", {
        "title": "Sales chart", "every": "weekdays 09:00", "catch_up": "all"}, 201)
    assert (made["ref"], made["label"], made["timezone"], made["catch_up"]) == (
        "S1", "weekdays 09:00", "Europe/Berlin", "all")
    runs = [datetime.fromtimestamp(t, BERLIN) for t in made["upcoming"]]
    assert len(runs) == 3 and all((r.hour, r.minute) == (9, 0) and r.weekday() < 5
                                  for r in runs)
    assert runs == sorted(runs) and len(set(runs)) == 3

    paused = await dash.ok("POST", "/api/schedules/S1/pause")
    assert paused["state"] == "paused" and paused["upcoming"] == []
    assert (await dash.ok("POST", "/api/schedules/1/resume"))["state"] == "active"
    occurrence = await dash.ok("POST", "/api/schedules/S1/run-now", None, 201)
    card = [t for t in await dash.ok("GET", "/api/tasks") if t["id"] == occurrence["id"]]
    assert card[0]["schedule_id"] == 1
    listed = await dash.ok("GET", "/api/schedules")
    assert listed["schedules"][0]["occurrences"] == 1
    await dash.ok("DELETE", "/api/schedules/S1")
    assert (await dash.ok("GET", "/api/schedules"))["schedules"] == []

    # POST /api/tasks with `every` makes a schedule too (the same create verb).
    again = await dash.ok("POST", "/api/tasks", {"title": "Ping", "every": "hourly"}, 201)
    assert again["ref"] == "S2" and again["next_run_at"] > 0


async def test_a_task_with_a_start_time_and_its_run_now(dash: Dash) -> None:
    made = await dash.ok("POST", "/api/tasks", {"title": "Report",
                                                "start_at": "2030-01-02T09:00"}, 201)
    [card] = await dash.ok("GET", "/api/tasks")
    assert card["starts_at"] == datetime(2030, 1, 2, 9, 0, tzinfo=BERLIN).timestamp()
    started = await dash.ok("POST", f"/api/tasks/{made['id']}/run-now")
    assert started == {"id": made["id"], "status": "ready"}
    [card] = await dash.ok("GET", "/api/tasks")
    assert card["starts_at"] is None
    refused = await dash.client.post(f"/api/tasks/{made['id']}/run-now")
    assert refused.status_code == 409 and "waits for no time" in refused.json()["error"]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/api/schedules", {"title": "x"}, 400, "needs `every`"),
    ("POST", "/api/schedules", {"title": "x", "every": "whenever"}, 400, "is not a schedule"),
    ("POST", "/api/schedules", {"title": "x", "every": "hourly", "catch_up": "some"}, 400,
     "catch_up"),
    ("POST", "/api/schedules/S9/pause", None, 404, "S9 not found"),
    ("POST", "/api/schedules/nine/pause", None, 404, "no schedule"),
    ("DELETE", "/api/schedules/S9", None, 404, "S9 not found"),
    ("POST", "/api/tasks", {"title": "x", "start_at": "yesterday"}, 400, "is not a time"),
])
async def test_refusals_are_one_line_with_their_status(dash: Dash, method: str, path: str,
                                                       body: object, status: int,
                                                       message: str) -> None:
    response = await dash.client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error
