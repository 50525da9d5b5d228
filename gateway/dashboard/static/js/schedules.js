// The Schedules view (#schedules): recurring tasks with their next runs, a form to add one, and
// pause / resume / run now / remove. Times are shown in each schedule's own zone.
import { h, clear } from "./dom.js";
import { api, get, post } from "./api.js";

// "Tue 8 Dec 09:00" in the zone `tz` (the operator's kanban.timezone, or a schedule's).
export function zoned(epoch, tz) {
  if (!epoch) return "";
  const options = { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  try {
    return new Intl.DateTimeFormat("en-GB", { ...options, timeZone: tz || undefined }).format(new Date(epoch * 1000)).replace(",", "");
  } catch {
    return new Intl.DateTimeFormat("en-GB", options).format(new Date(epoch * 1000)).replace(",", "");
  }
}

export class Schedules {
  constructor({ dialog, openButton, onChanged }) {
    this.dialog = dialog;
    this.onChanged = onChanged;
    this.data = null;
    openButton.addEventListener("click", () => { location.hash = "schedules"; });
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (location.hash === "#schedules") history.replaceState(null, "", location.pathname + location.search);
    });
    this.form = dialog.querySelector("#schedule-form");
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.create(); });
  }

  $(sel) { return this.dialog.querySelector(sel); }

  get open() { return this.dialog.open; }

  async show() {
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  async load() {
    const list = this.$("#schedule-list");
    try {
      this.data = await get("/api/schedules");
    } catch (err) {
      clear(list).append(h("p", { class: "form-error" }, `Could not read the schedules: ${err.message}`));
      return;
    }
    this.$("#schedule-zone").textContent = this.data.timezone;
    this.render();
  }

  render() {
    const list = clear(this.$("#schedule-list"));
    const schedules = this.data.schedules;
    if (!schedules.length) {
      list.append(h("p", { class: "muted empty-schedules" }, "No schedules yet. Add one below, or in chat: ",
        h("code", {}, '/kanban create Sales chart --every "weekdays 09:00" --assignee charts')));
      return;
    }
    const rows = schedules.map((s) => this.row(s));
    list.append(h("table", { class: "schedules", "aria-label": "Schedules" },
      h("thead", {}, h("tr", {}, ["Schedule", "Every", "Next runs", "Assignee", "Runs made", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)));
  }

  row(s) {
    const act = (label, fn, cls = "") => h("button", { type: "button", class: cls, "aria-label": `${label} ${s.ref}`, onclick: fn }, label);
    const next = s.state === "active"
      ? h("ol", { class: "upcoming" }, s.upcoming.map((t, i) => h("li", { class: i ? "muted" : "" }, zoned(t, s.timezone))))
      : h("span", { class: "badge paused" }, "paused");
    return h("tr", { "data-schedule": s.ref, class: s.state },
      h("td", {}, h("span", { class: "card-id" }, s.ref), " ", h("span", { class: "sched-title" }, s.title)),
      h("td", {}, s.label, h("div", { class: "muted small" }, `${s.timezone} · catch-up ${s.catch_up}${s.overlap ? " · overlap" : ""}`)),
      h("td", {}, next),
      h("td", {}, s.assignee ? h("span", { class: "chip" }, s.assignee) : h("span", { class: "chip muted" }, "unassigned")),
      h("td", {}, String(s.occurrences), s.last_task_id ? h("div", {}, h("a", { href: `#task-${s.last_task_id}` }, `#${s.last_task_id}`)) : null),
      h("td", {}, h("div", { class: "sched-actions" },
        act("Run now", () => this.change(() => post(`/api/schedules/${s.id}/run-now`), `${s.ref}: an occurrence was made now`)),
        s.state === "active"
          ? act("Pause", () => this.change(() => post(`/api/schedules/${s.id}/pause`), `${s.ref} paused`))
          : act("Resume", () => this.change(() => post(`/api/schedules/${s.id}/resume`), `${s.ref} resumed`), "primary"),
        act("Remove", () => {
          if (confirm(`Remove ${s.ref} ${s.title}? The tasks it made stay.`)) this.change(() => api("DELETE", `/api/schedules/${s.id}`), `${s.ref} removed`);
        }, "danger"))));
  }

  async change(fn, done) {
    const status = this.$("#schedule-status");
    try {
      await fn();
      status.textContent = done;
      status.classList.remove("form-error");
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("form-error");
    }
    await this.load();
    this.onChanged();
  }

  async create() {
    const f = new FormData(this.form);
    const error = this.form.querySelector(".form-error");
    const body = {
      title: String(f.get("title") || "").trim(), every: String(f.get("every") || "").trim(),
      assignee: f.get("assignee") || null, catch_up: f.get("catch_up") || null,
      overlap: f.get("overlap") === "on",
    };
    if (f.get("body")) body.body = String(f.get("body"));
    try {
      const made = await post("/api/schedules", body);
      error.hidden = true;
      this.form.reset();
      this.$("#schedule-status").textContent = `Scheduled ${made.ref}; first run ${zoned(made.next_run_at, made.timezone)} (${made.timezone})`;
      await this.load();
      this.onChanged();
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
    }
  }

  fillAssignees(profiles) {
    const select = this.form.querySelector("select[name=assignee]");
    const current = select.value;
    clear(select).append(h("option", { value: "" }, "(unassigned)"), ...profiles.map((p) => h("option", { value: p.name }, p.name)));
    select.value = current;
  }
}
