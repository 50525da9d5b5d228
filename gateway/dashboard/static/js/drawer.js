// The task drawer (#task-12): body, links, actions, files, runs with a live log tail, comments
// and the events timeline.
import { h, clear, icon, when, clock, size } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { get, post, withBoard } from "./api.js";
import { COLUMN_LABELS } from "./board.js";
import { zoned } from "./schedules.js";

// A ready or todo task made with a start time (not a back-off after failures).
function waiting(task) {
  return Boolean(task.not_before) && ["ready", "todo"].includes(task.status)
    && !task.consecutive_failures && !task.consecutive_requeues;
}

const LOG_POLL_MS = 1000;

export class Drawer {
  constructor(root, { onClose, onChanged }) {
    this.root = root;
    this.onClose = onClose;
    this.onChanged = onChanged;
    this.taskId = null;
    this.task = null;
    this.logTimer = null;
    this.logOffset = 0;
    this.logEl = null;
    this.pending = null; // an inline form (block reason, force confirm) kept across refreshes
  }

  get open() { return this.taskId !== null; }

  async show(id) {
    const changed = this.taskId !== id;
    this.taskId = id;
    if (changed) { this.pending = null; this.stopLog(); this.logOffset = 0; }
    this.root.hidden = false;
    if (changed) {
      clear(this.root).append(h("div", { class: "drawer-head" }, h("p", { class: "muted" }, `Loading #${id}…`)));
    }
    await this.refresh();
    if (changed) this.root.focus({ preventScroll: true });
  }

  close() {
    this.taskId = null;
    this.task = null;
    this.stopLog();
    this.root.hidden = true;
    clear(this.root);
  }

  async refresh() {
    const id = this.taskId;
    if (id === null) return;
    let task;
    try {
      task = await get(`/api/tasks/${id}`);
    } catch (err) {
      if (this.taskId !== id) return;
      clear(this.root).append(this.head({ id, title: "", status: null }),
        h("section", {}, h("p", { class: "form-error" },
          err.status === 404 ? `Task #${id} does not exist on this board.` : `Could not load task #${id}: ${err.message} — retrying`)));
      return;
    }
    if (this.taskId !== id) return;
    this.task = task;
    this.render(task);
  }

  head(task) {
    return h("div", { class: "drawer-head", style: task.status ? `--status-color: var(--${task.status})` : "" },
      h("div", { class: "line" },
        h("span", {}, `#${task.id}`),
        task.status ? h("span", { class: "status-pill" }, COLUMN_LABELS[task.status] || task.status) : null,
        task.assignee ? h("span", { class: "chip" }, task.assignee) : null,
        h("button", { class: "icon", type: "button", "aria-label": "Close task details", onclick: () => this.onClose() }, "×")),
      h("h1", { id: "drawer-title" }, task.title || ""),
      task.status ? this.actions(task) : null,
      this.pendingForm(task));
  }

  render(task) {
    const scrollTop = this.root.scrollTop;
    const commentDraft = this.root.querySelector("#comment-text")?.value || "";
    clear(this.root);
    this.root.setAttribute("aria-labelledby", "drawer-title");
    this.root.append(this.head(task));
    const meta = h("dl", { class: "meta" },
      h("dt", {}, "Assignee"), h("dd", {}, task.assignee || "unassigned"),
      h("dt", {}, "Priority"), h("dd", {}, String(task.priority)),
      h("dt", {}, "Created"), h("dd", {}, `${when(task.created_at)}${task.created_by ? ` by ${task.created_by}` : ""}`),
      task.completed_at ? [h("dt", {}, "Completed"), h("dd", {}, when(task.completed_at))] : null,
      task.consecutive_failures ? [h("dt", {}, "Failures"), h("dd", { class: "reason" }, `${task.consecutive_failures} — ${task.last_failure_error || ""}`)] : null,
      task.blocked_reason ? [h("dt", {}, "Blocked"), h("dd", {}, task.blocked_reason)] : null,
      waiting(task) ? [h("dt", {}, "Starts"), h("dd", {}, `${zoned(task.not_before, this.timezone)}${this.timezone ? ` (${this.timezone})` : ""}`)] : null,
      task.schedule_id ? [h("dt", {}, "Schedule"), h("dd", {}, h("a", { href: "#schedules" }, `S${task.schedule_id}`))] : null,
      task.decompose_error ? [h("dt", {}, "Decompose"), h("dd", { class: "reason" }, task.decompose_error)] : null,
      task.result ? [h("dt", {}, "Result"), h("dd", {}, task.result)] : null,
    );
    this.root.append(h("section", {}, meta));
    this.root.append(h("section", {}, h("h2", {}, "Description"),
      task.body ? renderMarkdown(task.body) : h("p", { class: "muted" }, "No description.")));
    if (task.parents.length || task.children.length) {
      const links = (items) => h("div", { class: "links" }, items.map((t) => h("a", { href: `#task-${t.id}` },
        `#${t.id} ${t.title ?? ""}`, t.status ? h("span", { class: "muted" }, ` · ${t.status}`) : null)));
      this.root.append(h("section", {},
        task.parents.length ? [h("h2", {}, "Parents"), links(task.parents)] : null,
        task.children.length ? [h("h2", {}, `Sub-tasks (${task.children.filter((c) => c.status === "done" || c.status === "archived").length}/${task.children.length} finished)`), links(task.children)] : null));
    }
    if (task.artifacts.length) this.root.append(this.files(task));
    this.root.append(this.runs(task));
    this.root.append(this.comments(task, commentDraft));
    this.root.append(this.events(task));
    this.root.scrollTop = scrollTop;
    if (task.status === "running" || this.logTimer) this.startLog();
  }

  actions(task) {
    const s = task.status;
    const buttons = [];
    const act = (label, fn, cls = "") => buttons.push(h("button", { type: "button", class: cls, onclick: fn }, label));
    if (s === "triage") act("Decompose", () => this.run(() => post(`/api/tasks/${task.id}/decompose`), "Decomposed"), "primary");
    if (!["done", "archived"].includes(s)) act("Complete", () => this.complete(task), ["triage", "blocked"].includes(s) ? "" : "primary");
    if (!["blocked", "done", "archived"].includes(s)) act("Block", () => { this.pending = { kind: "block" }; this.render(this.task); this.root.querySelector("#block-reason")?.focus(); });
    if (s === "blocked") act("Unblock", () => this.run(() => post(`/api/tasks/${task.id}/unblock`)), "primary");
    if (waiting(task)) act("Run now", () => this.run(() => post(`/api/tasks/${task.id}/run-now`), "Started"), "primary");
    if (s !== "archived") act("Archive", () => this.archive(task), "danger");
    return h("div", { class: "actions", role: "group", "aria-label": "Actions" }, buttons);
  }

  pendingForm(task) {
    const p = this.pending;
    if (!p) return null;
    const cancel = h("button", { type: "button", onclick: () => { this.pending = null; this.render(this.task); } }, "Cancel");
    if (p.kind === "block") {
      const input = h("input", { id: "block-reason", placeholder: "Why does this need a person?", "aria-label": "Block reason", maxlength: 500 });
      const form = h("form", { class: "inline-form" }, input,
        h("button", { type: "submit", class: "primary" }, task.status === "running" ? "Force block" : "Block"), cancel);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const reason = input.value.trim();
        if (!reason) { input.focus(); return; }
        this.run(() => post(`/api/tasks/${task.id}/block`, { reason, force: task.status === "running" }));
      });
      return form;
    }
    if (p.kind === "force") {
      return h("div", { class: "notice", role: "alertdialog", "aria-label": "Confirm" },
        h("p", { style: "margin:0 0 6px" }, p.message),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "primary", onclick: () => this.run(p.action) }, p.label), cancel));
    }
    if (p.kind === "error") {
      return h("p", { class: "form-error", role: "alert" }, p.message);
    }
    return null;
  }

  complete(task) {
    const action = () => post(`/api/tasks/${task.id}/complete`, { force: task.status === "running" });
    if (task.status === "running") {
      this.pending = { kind: "force", label: "Force complete", action,
        message: "This task is running. Completing it now stops its worker's claim (the worker's own result will be refused)." };
      this.render(this.task);
    } else this.run(action);
  }

  archive(task) {
    const action = () => post(`/api/tasks/${task.id}/archive`, { force: task.status === "running" });
    this.pending = { kind: "force", label: task.status === "running" ? "Force archive" : "Archive", action,
      message: task.status === "running" ? "This task is running. Archive it anyway? Its worker's claim ends."
        : "Archive this task? It leaves the board; its sub-tasks treat it as finished." };
    this.render(this.task);
  }

  async run(action) {
    try {
      await action();
      this.pending = null;
    } catch (err) {
      this.pending = { kind: "error", message: err.message };
    }
    await this.refresh();
    this.onChanged();
  }

  files(task) {
    return h("section", {}, h("h2", {}, `Files (${task.artifacts.length})`),
      h("div", { class: "files" }, task.artifacts.map((f) => {
        if (!f.available) return h("div", { class: "file doc" }, icon("file"), h("span", {}, f.name), h("span", { class: "muted" }, "not available"));
        const url = withBoard(f.url);
        const download = withBoard(`${f.url}?download=1`);
        if (f.kind === "image") {
          return h("figure", { class: "file", style: "margin:0" },
            h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: f.name, loading: "lazy" })),
            h("figcaption", { class: "file-name" }, h("a", { href: download, download: f.name }, f.name), h("span", { class: "muted" }, size(f.size))));
        }
        return h("div", { class: "file doc" }, icon("file"),
          h("a", { href: download, download: f.name }, f.name), h("span", { class: "muted" }, size(f.size)));
      })));
  }

  runs(task) {
    const items = task.runs.slice().reverse().map((r) => h("li", {},
      h("span", { class: `outcome ${r.status}` }, r.status === "active" ? "running" : r.status.replace("_", " ")),
      ` · run ${r.id}${r.profile ? ` · ${r.profile}` : ""} · ${when(r.claimed_at)}`,
      r.ended_at && r.claimed_at ? h("span", { class: "muted" }, ` · ${Math.max(0, Math.round(r.ended_at - r.claimed_at))}s`) : null,
      r.exit_code !== null && r.exit_code !== undefined ? h("span", { class: "muted" }, ` · exit ${r.exit_code}`) : null,
      r.error ? h("div", { class: "reason" }, r.error) : null));
    const section = h("section", {}, h("h2", {}, "Runs"),
      items.length ? h("ul", { class: "runs" }, items) : h("p", { class: "muted" }, "Not run yet."));
    if (task.log && task.log.size !== null) {
      this.logEl = h("pre", { class: "log", "aria-label": "Worker log", tabindex: "0" });
      this.logOffset = 0;
      section.append(h("h2", {}, task.status === "running" ? "Worker log (live)" : "Worker log"), this.logEl);
      this.startLog();
    } else {
      this.logEl = null;
    }
    return section;
  }

  startLog() {
    if (this.logTimer || !this.logEl) return;
    const tick = async () => {
      this.logTimer = null;
      if (!this.logEl || this.taskId === null || !this.task) return;
      let data;
      try {
        data = await get(`/api/tasks/${this.taskId}/log?offset=${this.logOffset}`);
      } catch { data = null; }
      if (data && this.logEl) {
        if (data.offset < this.logOffset) this.logEl.textContent = "";
        if (data.text) {
          const stick = this.logEl.scrollTop + this.logEl.clientHeight >= this.logEl.scrollHeight - 4;
          this.logEl.append(data.text);
          if (stick) this.logEl.scrollTop = this.logEl.scrollHeight;
        }
        this.logOffset = data.offset;
        // Poll only while the worker runs (or while there is more to read).
        if (data.running || data.offset < data.size) this.logTimer = setTimeout(tick, data.offset < data.size ? 50 : LOG_POLL_MS);
      } else if (this.task && this.task.status === "running") {
        this.logTimer = setTimeout(tick, LOG_POLL_MS * 2);
      }
    };
    this.logTimer = setTimeout(tick, 0);
  }

  stopLog() {
    if (this.logTimer) clearTimeout(this.logTimer);
    this.logTimer = null;
  }

  comments(task, draft) {
    const text = h("textarea", { id: "comment-text", rows: 2, placeholder: "Add a comment (markdown)", "aria-label": "New comment" });
    text.value = draft;
    const error = h("p", { class: "form-error", hidden: true });
    const form = h("form", { class: "comment-form" }, text, error,
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Comment")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!text.value.trim()) { text.focus(); return; }
      try {
        await post(`/api/tasks/${task.id}/comments`, { text: text.value });
        text.value = "";
        await this.refresh();
      } catch (err) { error.hidden = false; error.textContent = err.message; }
    });
    return h("section", {}, h("h2", {}, `Comments (${task.comments.length})`),
      task.comments.length ? h("ul", { class: "comments" }, task.comments.map((c) => h("li", {},
        h("div", { class: "muted", style: "font-size:12px" }, `${c.author} · ${when(c.created_at)}`),
        renderMarkdown(c.body)))) : null,
      form);
  }

  events(task) {
    const rows = task.events.slice().reverse().map((e) => h("li", {},
      h("span", { class: "when", title: when(e.created_at) }, clock(e.created_at)),
      h("span", {}, h("strong", {}, e.kind.replace(/_/g, " ")), describe(e))));
    return h("section", {}, h("h2", {}, "Activity"), h("ul", { class: "events" }, rows));
  }
}

function describe(e) {
  const p = e.payload || {};
  const bits = [];
  if (p.reason) bits.push(p.reason);
  if (p.to) bits.push(`→ ${p.to}`);
  if (p.by) bits.push(`by ${p.by}`);
  if (p.assignee !== undefined && e.kind === "assigned") bits.push(`→ ${p.assignee ?? "nobody"}`);
  if (p.summary) bits.push(p.summary);
  if (Array.isArray(p.artifacts) && p.artifacts.length) bits.push(`${p.artifacts.length} file(s)`);
  if (p.error) bits.push(String(p.error).split("\n")[0]);
  return bits.length ? ` — ${bits.join(" · ")}` : "";
}
