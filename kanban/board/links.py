"""Links between tasks: add (cycle-checked) and remove, re-gating the child at once."""

from __future__ import annotations

from kanban.board.shared import BoardCore
from kanban.errors import InvalidInput
from kanban.models import Task
from kanban.storage import store
from kanban.storage.tx import Tx


class LinksMixin(BoardCore):
    async def link(self, parent: int, child: int) -> Task:
        """Add parent → child. Rejects cycles; a ready child waiting on an unfinished parent goes
        back to todo."""

        def run(tx: Tx) -> Task:
            if store.insert_link(tx, parent, child):
                store.append_event(tx, child, "linked", {"parent": parent, "child": child})
                store.gate(tx, child)
            return store.load_task(tx, child, with_links=True)

        return await self.db.write(run)

    async def unlink(self, parent: int, child: int) -> Task:
        """Remove parent → child and re-evaluate the child at once."""

        def run(tx: Tx) -> Task:
            store.load_task(tx, child)
            if not store.remove_link(tx, parent, child):
                raise InvalidInput(f"task {child} has no parent {parent}")
            store.append_event(tx, child, "unlinked", {"parent": parent, "child": child})
            store.gate(tx, child)
            return store.load_task(tx, child, with_links=True)

        return await self.db.write(run)
