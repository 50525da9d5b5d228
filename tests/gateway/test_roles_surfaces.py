"""The roles on each surface, as a user meets them: chat through the router of a running daemon
(the in-memory fake platform, messages as the platform receives them), and the dashboard's API
over HTTP. The command line's worker identity is in ``test_worker_identity.py``; the table row
by row in ``test_roles.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.config import load_config
from gateway.dashboard import create_app
from platforms.fake import FakeAdapter
from tests.gateway.chat_harness import truthy
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until

MEMBER = "u-member"
ADMIN = "u-admin"
ORIGIN = "http://127.0.0.1:8765"


def config_for(roots: Path, allowed: Path) -> str:
    return (f"kanban: {{auto_decompose: false, dispatch_in_gateway: false, "
            f"workspace_roots: [{roots}]}}\n"
            f"delivery: {{allowed_roots: [{allowed}]}}\n"
            f"platforms: {{fake: {{admins: [{ADMIN}]}}}}\n")


async def test_chat_members_and_admins(tmp_path: Path) -> None:
    home = tmp_path / "home"
    roots = tmp_path / "projects"
    (roots / "app").mkdir(parents=True)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    creds = secrets / "creds.json"
    creds.write_text('{"token": "hunter2"}', encoding="utf-8")
    # Only a member is on allowed_users: the admin is served because it is an admin.
    fake = FakeAdapter(platform="fake", allowed_users=[MEMBER, ADMIN])
    async with running(home, config_for(roots, secrets), {"fake": lambda: fake}) as daemon:
        await daemon.ready.wait()
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        board = await daemon.boards.open("default")

        async def say(user: str, text: str, thread: str = "t1") -> str:
            """The answer to one message (completion notices may arrive meanwhile)."""
            before = len([c for c in fake.calls if c.method == "send"])
            await fake.inject(chat="c1", thread=thread, user_id=user, user_name=user, text=text)

            async def answered() -> str | None:
                sent = [c.text or "" for c in fake.calls if c.method == "send"][before:]
                answers = [t for t in sent if not t.startswith("✔ done")]
                return answers[0] if answers else None

            return await wait_until(answered, within=30, what=f"the answer to {text!r}")

        # A member: no host paths, no writes on a worker's behalf, no board removal, no other
        # chats — each refused in one line, nothing changed.
        answer = await say(MEMBER, f"/kanban create fix --workspace dir:{secrets}")
        assert "members create tasks in scratch or worktree workspaces" in answer
        assert await board.list_tasks() == []
        made = await say(MEMBER, "/kanban create plain work")
        assert made.startswith("Created #1 plain work")
        for attempt in (f"/kanban complete 1 --result {creds}", "/kanban block 1 mine now",
                        "/kanban archive 1", "/kanban boards create spare",
                        "/kanban boards remove default --delete",
                        "/kanban subscribe 1 --platform fake --chat c-elsewhere"):
            refused = await say(MEMBER, attempt)
            assert "for admins" in refused or "only the thread they write in" in refused, (
                attempt, refused)
            assert "\n" not in refused
        assert (await board.get_task(1)).status == "ready"
        assert [(s.chat, s.thread) for s in await board.subscriptions(1)] == [("c1", "t1")]
        assert "Following #1 here" in await say(MEMBER, "/subscribe 1", thread="t2")

        # An admin: operator rights, but host paths only under kanban.workspace_roots.
        refused = await say(ADMIN, f"/kanban create grab --workspace dir:{secrets}")
        assert "must lie under kanban.workspace_roots" in refused
        made = await say(ADMIN, f"/kanban create build --workspace dir:{roots / 'app'}")
        assert made.startswith("Created #2 build")
        done = await say(ADMIN, f'/kanban complete 2 --result "see {creds}"')
        assert done.startswith("Task 2 done"), done

        # The completion reaches both threads' subscribers as text: the path in the result lies
        # outside the task's own folders, so it is never uploaded — not even from
        # delivery.allowed_roots, which admits declared artifacts only.
        async def notified() -> bool:
            return any(t.startswith("✔ done · #2") for t in fake.texts)

        await wait_until(notified, within=30, what="the completion notice")
        uploads = [p for c in fake.calls for p in c.files]
        assert uploads == []
        assert all("hunter2" not in (c.text or "") for c in fake.calls)

        # A command's answer quotes the result as text and uploads nothing either.
        shown = await say(MEMBER, "/kanban show 2")
        assert "creds.json" in shown
        assert [p for c in fake.calls for p in c.files] == []


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path, Path]]:
    home = tmp_path / "home"
    home.mkdir()
    roots = tmp_path / "projects"
    (roots / "app").mkdir(parents=True)
    outside = tmp_path / "secrets"
    outside.mkdir()
    (home / "config.yaml").write_text(f"kanban: {{workspace_roots: [{roots}]}}\n",
                                      encoding="utf-8")
    app = create_app(home, load_config(None, {}, home=home))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN,
                                     headers={"Origin": ORIGIN}) as client:
            yield client, roots, outside


async def test_the_dashboard_names_host_paths_only_under_the_roots(
    dashboard: tuple[httpx.AsyncClient, Path, Path],
) -> None:
    client, roots, outside = dashboard
    refused = await client.post("/api/tasks", json={"title": "grab",
                                                    "workspace": f"dir:{outside}"})
    assert refused.status_code == 403
    assert "kanban.workspace_roots" in refused.json()["error"]
    listed = await client.get("/api/tasks")
    assert listed.status_code == 200 and listed.json() == []
    made = await client.post("/api/tasks", json={"title": "build",
                                                 "workspace": f"dir:{roots / 'app'}"})
    assert made.status_code in (200, 201), made.text
    # A link inside a root that points out of it is outside.
    (roots / "escape").symlink_to(outside)
    linked = await client.post("/api/tasks", json={"title": "sly",
                                                   "workspace": f"dir:{roots / 'escape'}"})
    assert linked.status_code == 403, linked.text
