"""Triage decomposition in the kernel: turn one rough task into a validated graph of children.

Validation happens before any write (indices, self-parents, cycles via Kahn's algorithm, fan-out),
then the whole graph is written in ONE transaction, so a bad plan never leaves half a graph.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kanban.board.shared import BoardCore
from kanban.errors import Conflict, CycleError, InvalidInput
from kanban.models import Task
from kanban.storage import store
from kanban.storage.tx import Tx
from kanban.timeutil import now
from kanban.validation import check_text, check_title

DEFAULT_MAX_FANOUT = 8


@dataclass(frozen=True)
class ChildSpec:
    title: str
    body: str = ""
    assignee: str | None = None
    parents: tuple[int, ...] = field(default_factory=tuple)  # indices of sibling specs


def validate_plan(children: list[ChildSpec], *, max_fanout: int = DEFAULT_MAX_FANOUT) -> list[int]:
    """Check a decomposition plan; returns a topological order of the child indices.

    Raises :class:`InvalidInput` (or :class:`CycleError`) naming the first problem found.
    """
    if not children:
        raise InvalidInput("a decomposition needs at least one child task")
    if len(children) > max_fanout:
        raise InvalidInput(
            f"decomposition has {len(children)} children; the fan-out limit is {max_fanout}"
        )
    count = len(children)
    indegree = [0] * count
    edges: list[list[int]] = [[] for _ in range(count)]
    for index, spec in enumerate(children):
        if not spec.title.strip():
            raise InvalidInput(f"child {index} has an empty title")
        for parent in spec.parents:
            if not isinstance(parent, int) or isinstance(parent, bool):
                raise InvalidInput(f"child {index} names a non-integer parent {parent!r}")
            if parent == index:
                raise InvalidInput(f"child {index} lists itself as its own parent")
            if not 0 <= parent < count:
                raise InvalidInput(
                    f"child {index} names parent index {parent}, outside 0..{count - 1}"
                )
        for parent in dict.fromkeys(spec.parents):
            edges[parent].append(index)
            indegree[index] += 1
    # Kahn's algorithm: whatever never reaches indegree 0 sits on a cycle.
    queue = deque(i for i in range(count) if indegree[i] == 0)
    order: list[int] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for nxt in edges[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                queue.append(nxt)
    if len(order) != count:
        stuck = [i for i in range(count) if indegree[i] > 0]
        named = ", ".join(map(str, stuck[:5])) + (
            f", … ({len(stuck)} children)" if len(stuck) > 5 else "")
        raise CycleError(f"decomposition graph has a cycle among children {named}", stuck)
    return order


@dataclass(frozen=True)
class Decomposition:
    root: Task
    child_ids: list[int]


class TriageMixin(BoardCore):
    """Decomposing, promoting and listing triage tasks."""

    async def decompose_triage_task(
        self,
        root_id: int,
        children: list[ChildSpec],
        *,
        orchestrator: str | None,
        auto_promote: bool = True,
        rationale: str = "",
        author: str = "decomposer",
        max_fanout: int = DEFAULT_MAX_FANOUT,
    ) -> Decomposition:
        """Write a decomposition: N children with their sibling edges, the root linked as a child
        of every child (it wakes when the whole graph is done), root triage → todo assigned to
        the orchestrator, an audit comment and a ``decomposed`` event — one transaction.

        With ``auto_promote=False`` parent-free children stay in todo for review.
        """
        order = validate_plan(children, max_fanout=max_fanout)
        for spec in children:
            check_title(spec.title)
            check_text(spec.body, "body")

        def run(tx: Tx) -> Decomposition:
            root = store.load_task(tx, root_id)
            if root.status != "triage":
                raise Conflict(
                    f"task {root_id} is {root.status}; only a triage task can be decomposed"
                    + (" (it was already decomposed)" if root.decomposed_at else "")
                )
            stamp = now()
            ids: dict[int, int] = {}
            for index in order:
                spec = children[index]
                child_id = int(tx.one(
                    "INSERT INTO tasks (title, body, status, assignee, priority, created_at, "
                    "updated_at, created_by, workspace_kind) VALUES (?,?,?,?,?,?,?,?,?) "
                    "RETURNING id",
                    (spec.title.strip(), spec.body, "todo", spec.assignee, root.priority,
                     stamp, stamp, author, "scratch"),
                )[0])
                ids[index] = child_id
                for parent in dict.fromkeys(spec.parents):
                    store.insert_link(tx, ids[parent], child_id)
                store.insert_link(tx, child_id, root_id)
                store.append_event(tx, child_id, "created", {
                    "title": spec.title, "status": "todo", "assignee": spec.assignee,
                    "parents": [ids[p] for p in spec.parents], "decomposed_from": root_id,
                })
            child_ids = [ids[i] for i in range(len(children))]
            store.set_status(tx, root_id, "triage", "todo", assignee=orchestrator,
                             decomposed_at=stamp, decompose_error=None, decompose_failed_at=None)
            lines = [f"Decomposed by {author} into {len(child_ids)} task(s):"]
            for index, child_id in enumerate(child_ids):
                spec = children[index]
                after = (" after " + ", ".join(f"#{ids[p]}" for p in spec.parents)
                         if spec.parents else "")
                lines.append(f"- #{child_id} {spec.title} → {spec.assignee or 'unassigned'}{after}")
            if rationale:
                lines.append(f"Rationale: {rationale}")
            store.add_comment(tx, root_id, author, "\n".join(lines), kind="system")
            store.append_event(tx, root_id, "decomposed", {
                "children": child_ids, "orchestrator": orchestrator, "author": author,
                "rationale": rationale, "auto_promote": auto_promote,
            })
            if auto_promote:
                for child_id in child_ids:
                    store.gate(tx, child_id)
            return Decomposition(store.load_task(tx, root_id, with_links=True), child_ids)

        return await self.db.write(run)

    async def promote_triage(
        self, root_id: int, *, title: str, body: str, assignee: str | None,
        author: str = "decomposer", rationale: str = "",
    ) -> Task:
        """Single-task promotion: a triage task gets refined text and an assignee and becomes
        todo or ready (by its parents)."""
        title = check_title(title)
        check_text(body, "body")

        def run(tx: Tx) -> Task:
            root = store.load_task(tx, root_id)
            if root.status != "triage":
                raise Conflict(f"task {root_id} is {root.status}; only a triage task is promoted")
            target = "todo" if store.unsatisfied_parents(tx, root_id) else "ready"
            store.set_status(tx, root_id, "triage", target, title=title, body=body,
                             assignee=assignee, decomposed_at=now(), decompose_error=None,
                             decompose_failed_at=None)
            note = f"Specified by {author} as a single task for {assignee or 'unassigned'}."
            if rationale:
                note += f"\nRationale: {rationale}"
            store.add_comment(tx, root_id, author, note, kind="system")
            store.append_event(tx, root_id, "specified", {
                "title": title, "assignee": assignee, "to": target, "author": author,
            })
            return store.load_task(tx, root_id, with_links=True)

        return await self.db.write(run)

    async def record_decompose_failure(self, root_id: int, reason: str) -> Task:
        """The task stays in triage; the reason and time are recorded (for cooldowns and people)."""

        def run(tx: Tx) -> Task:
            store.load_task(tx, root_id)
            stamp = now()
            # Only a task still in triage records the failure: another process may have
            # decomposed it meanwhile, and its graph must not be stamped as failed.
            cur = tx.execute(
                "UPDATE tasks SET decompose_failed_at = ?, decompose_error = ?, updated_at = ? "
                "WHERE id = ? AND status = 'triage'",
                (stamp, reason, stamp, root_id),
            )
            if cur.rowcount == 1:
                store.append_event(tx, root_id, "decompose_failed", {"reason": reason})
            return store.load_task(tx, root_id, with_links=True)

        return await self.db.write(run)

    async def triage_candidates(
        self, *, limit: int, cooldown_seconds: float = 0.0
    ) -> list[Task]:
        """Triage tasks oldest first, skipping those whose last attempt failed within the
        cooldown."""
        cutoff = now() - cooldown_seconds

        def run(tx: Tx) -> list[Task]:
            rows = tx.all(
                "SELECT * FROM tasks WHERE status = 'triage' AND (decompose_failed_at IS NULL "
                "OR decompose_failed_at < ?) ORDER BY created_at, id LIMIT ?",
                (cutoff, limit),
            )
            return [Task.from_row(r) for r in rows]

        return await self.db.read(run)


def plan_from_json(items: list[Any]) -> list[ChildSpec]:
    """Build specs from already-parsed JSON items; raises InvalidInput on a bad shape."""
    specs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"task {index} is not an object")
        title = item.get("title")
        if not isinstance(title, str) or not title.strip():
            raise InvalidInput(f"task {index} has no title")
        body = item.get("body")
        body = "" if body is None else body
        assignee = item.get("assignee")
        parents = item.get("parents", [])
        if parents is None:
            parents = []
        if not isinstance(parents, list):
            raise InvalidInput(f"task {index}: parents must be a list of indices")
        specs.append(ChildSpec(
            title=title.strip(),
            body=body if isinstance(body, str) else str(body),
            assignee=assignee if isinstance(assignee, str) and assignee.strip() else None,
            parents=tuple(parents),
        ))
    return specs
