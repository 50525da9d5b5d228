// The columns and their cards. Cards are keyed by task id and reused when unchanged, so a live
// refresh never rebuilds the board (nothing flickers); a card that moved or changed flashes once.
import { h, icon, age, clear } from "./dom.js";
import { zoned } from "./schedules.js";

export const COLUMN_LABELS = {
  triage: "Triage", todo: "Todo", ready: "Ready", running: "Running",
  blocked: "Blocked", done: "Done", archived: "Archived",
};

export class BoardView {
  constructor(root, { onOpen, onDecompose }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onDecompose = onDecompose;
    this.cards = new Map(); // id -> {el, sig}
    this.columns = new Map(); // status -> {section, list, count, more}
    this.current = "ready"; // the column shown on a phone
    this.first = true;
    this.timezone = null; // kanban.timezone: a waiting card's start time is shown in it
  }

  render(data) {
    const statuses = data.columns.map((c) => c.status);
    if (this.first || [...this.columns.keys()].join() !== statuses.join()) this.build(statuses);
    const seen = new Set();
    for (const column of data.columns) {
      const col = this.columns.get(column.status);
      col.count.textContent = column.count;
      col.section.setAttribute("aria-label", `${COLUMN_LABELS[column.status]}: ${column.count} tasks`);
      const wanted = column.tasks.map((task) => {
        seen.add(task.id);
        return this.card(task);
      });
      // Put the wanted cards in order, moving only what is out of place.
      let cursor = col.list.firstChild;
      for (const el of wanted) {
        if (el === cursor) { cursor = cursor.nextSibling; continue; }
        col.list.insertBefore(el, cursor);
      }
      while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
      col.empty.hidden = column.tasks.length > 0;
      col.more.hidden = column.more === 0;
      col.more.textContent = column.more ? `… ${column.more} more (search or filter to narrow)` : "";
    }
    for (const [id, entry] of this.cards) {
      if (!seen.has(id)) { entry.el.remove(); this.cards.delete(id); }
    }
    this.first = false;
    this.root.setAttribute("aria-busy", "false");
  }

  build(statuses) {
    clear(this.root);
    this.columns.clear();
    for (const status of statuses) {
      const count = h("span", { class: "count" }, "0");
      const list = h("ol", { class: "cards", role: "list" });
      const empty = h("p", { class: "empty" }, "No tasks");
      const more = h("p", { class: "more" });
      const section = h("section", {
        class: `column ${status === this.current ? "current" : ""}`, "data-status": status,
        style: `--status-color: var(--${status})`,
      }, h("header", { class: "column-head" },
        h("span", { class: "swatch", style: `background: var(--${status})` }),
        h("h2", { style: "font-size:14px;margin:0" }, COLUMN_LABELS[status]), count),
      list, empty, more);
      this.columns.set(status, { section, list, count, empty, more });
      this.root.append(section);
    }
    this.cards.clear();
  }

  showColumn(status) {
    this.current = status;
    for (const [s, col] of this.columns) col.section.classList.toggle("current", s === status);
  }

  card(task) {
    const sig = JSON.stringify(task);
    const known = this.cards.get(task.id);
    if (known && known.sig === sig) {
      known.ageEl.textContent = age(task.created_at); // ages move with the clock
      return known.el;
    }
    const ageEl = h("span", { class: "age", title: "age" }, age(task.created_at));
    const top = h("div", { class: "card-top" },
      task.status === "running" ? h("span", { class: "live-dot", title: "running now", "aria-label": "running" }) : null,
      h("span", { class: "card-id" }, `#${task.id}`),
      task.priority > 0 ? h("span", { class: "badge prio", title: "priority" }, `P${task.priority}`) : null,
      task.failures > 0 ? h("span", { class: "badge fail", title: `${task.failures} consecutive failure(s)` },
        icon("warn"), ` ${task.failures}`) : null,
      task.files > 0 ? h("span", { title: `${task.files} file(s)`, "aria-label": `${task.files} files` }, icon("clip"), task.files > 1 ? ` ${task.files}` : "") : null,
      task.schedule_id ? h("span", { class: "badge sched", title: `made by schedule S${task.schedule_id}` }, `↻ S${task.schedule_id}`) : null,
    );
    const starts = task.starts_at ? zoned(task.starts_at, this.timezone) : null;
    const title = h("div", { class: "card-title" }, task.title);
    const bottom = h("div", { class: "card-bottom" },
      task.assignee ? h("span", { class: "chip", title: `assignee: ${task.assignee}` }, task.assignee)
        : h("span", { class: "chip muted" }, "unassigned"),
      task.children ? h("span", { class: "progress", title: `${task.children[0]} of ${task.children[1]} sub-tasks finished` },
        h("span", { class: "bar" }, h("span", { style: `width:${Math.round(100 * task.children[0] / Math.max(1, task.children[1]))}%` })),
        `${task.children[0]}/${task.children[1]}`) : null,
      ageEl,
    );
    const el = h("li", {
      class: "card", tabindex: "0", role: "button", "data-id": task.id,
      "aria-label": `Task ${task.id}: ${task.title}, ${task.status}${starts ? `, starts ${starts}` : ""}${task.assignee ? `, assigned to ${task.assignee}` : ""}`,
      style: `--status-color: var(--${task.status})`,
    }, top, title,
    task.reason ? h("div", { class: "reason", title: task.reason }, task.reason) : null,
    starts ? h("div", { class: "badge starts", title: `waits until ${starts}${this.timezone ? ` (${this.timezone})` : ""}` }, icon("clock"), ` starts ${starts}`) : null,
    bottom);
    if (task.status === "triage") {
      el.append(h("button", {
        type: "button", class: "decompose", "aria-label": `Decompose task ${task.id}`,
        onclick: (ev) => { ev.stopPropagation(); this.onDecompose(task.id, ev.currentTarget); },
      }, "Decompose"));
    }
    el.addEventListener("click", () => this.onOpen(task.id));
    el.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); this.onOpen(task.id); }
    });
    if (known && known.el.isConnected) {
      known.el.replaceWith(el);
    }
    if (!this.first) flash(el);
    this.cards.set(task.id, { el, sig, ageEl });
    return el;
  }

  select(id) {
    for (const { el } of this.cards.values()) el.classList.toggle("selected", Number(el.dataset.id) === id);
  }

  // Arrow keys: up/down within a column, left/right to the neighbouring column.
  move(from, key) {
    const card = from.closest(".card");
    if (!card) return false;
    const column = card.closest(".column");
    const cards = [...column.querySelectorAll(".card")];
    const index = cards.indexOf(card);
    let target = null;
    if (key === "ArrowDown") target = cards[index + 1];
    else if (key === "ArrowUp") target = cards[index - 1];
    else {
      const cols = [...this.root.querySelectorAll(".column")];
      let c = cols.indexOf(column);
      const step = key === "ArrowRight" ? 1 : -1;
      for (c += step; c >= 0 && c < cols.length; c += step) {
        const others = [...cols[c].querySelectorAll(".card")];
        if (others.length) { target = others[Math.min(index, others.length - 1)]; break; }
      }
    }
    if (target) { target.focus(); target.scrollIntoView({ block: "nearest", inline: "nearest" }); }
    return Boolean(target);
  }
}

function flash(el) {
  el.classList.add("flash");
  setTimeout(() => el.classList.remove("flash"), 60);
}
