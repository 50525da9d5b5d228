// Boot: the board, live updates from /api/events, the drawer (#task-ID), chat, keyboard.
import { h, clear } from "./dom.js";
import { state, get, post, withBoard } from "./api.js";
import { BoardView, COLUMN_LABELS } from "./board.js";
import { Drawer } from "./drawer.js";
import { Chat } from "./chat.js";
import { Orchestration } from "./orchestration.js";
import { Schedules } from "./schedules.js";

const $ = (sel) => document.querySelector(sel);
const PER_COLUMN = 200;

const ui = {
  live: false,
  archived: false,
  retryDelay: 1000,
  refreshTimer: null,
  drawerTimer: null,
  source: null,
  lastData: null,
};

const boardView = new BoardView($("#board"), { onOpen: openTask, onDecompose: decompose });
const drawer = new Drawer($("#drawer"), { onClose: closeTask, onChanged: () => scheduleRefresh(0) });
const chat = new Chat($("#chat"), {
  log: $("#chat-log"), form: $("#chat-form"), input: $("#chat-input"), error: $("#chat-error"),
  onCommandSent: () => scheduleRefresh(300),
});
const orch = new Orchestration({
  pill: $("#orch-pill"), dialog: $("#orch-dialog"), openButton: $("#orch-open"), onProfiles: fillAssignees,
});
const schedules = new Schedules({
  dialog: $("#schedules-dialog"), openButton: $("#schedules-open"), onChanged: () => scheduleRefresh(0),
});

function banner(message) {
  const el = $("#banner");
  el.hidden = !message;
  el.textContent = message || "";
}

function connection(kind) {
  const el = $("#conn");
  el.className = `conn ${kind}`;
  el.querySelector(".conn-label").textContent = kind === "live" ? "live" : kind === "reconnecting" ? "reconnecting…" : "connecting";
}

// ---- the board -------------------------------------------------------------------------------

async function loadBoard() {
  const params = new URLSearchParams({ limit: String(PER_COLUMN) });
  const q = $("#search").value.trim();
  if (q) params.set("q", q);
  const who = $("#assignee-filter").value;
  if (who) params.set("assignee", who);
  if (ui.archived) params.set("archived", "1");
  try {
    const data = await get(`/api/board?${params}`);
    ui.retryDelay = 1000;
    banner(null);
    ui.lastData = data;
    boardView.render(data);
    renderCounts(data);
    fillAssigneeFilter(data.assignees);
    if (drawer.open) boardView.select(drawer.taskId);
  } catch (err) {
    if (err.status === 404 || err.status === 400) {
      banner(`${err.message}`);
      return;
    }
    banner(`Could not reach the board — retrying in ${Math.round(ui.retryDelay / 1000)}s…`);
    connection("reconnecting");
    setTimeout(loadBoard, ui.retryDelay);
    ui.retryDelay = Math.min(ui.retryDelay * 2, 10000);
  }
}

function scheduleRefresh(delay = 120) {
  clearTimeout(ui.refreshTimer);
  ui.refreshTimer = setTimeout(loadBoard, delay);
}

function renderCounts(data) {
  const counts = clear($("#counts"));
  const tabs = clear($("#tabs"));
  for (const column of data.columns) {
    counts.append(h("span", {}, `${COLUMN_LABELS[column.status]} `, h("b", {}, column.count)));
    const selected = column.status === boardView.current;
    tabs.append(h("button", {
      type: "button", role: "tab", "aria-selected": String(selected),
      onclick: () => { boardView.showColumn(column.status); renderCounts(ui.lastData); },
    }, COLUMN_LABELS[column.status], h("span", { class: "n" }, column.count)));
  }
}

function fillAssigneeFilter(names) {
  const select = $("#assignee-filter");
  const current = select.value;
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join() === names.join()) return;
  clear(select).append(h("option", { value: "" }, "Everyone"), ...names.map((n) => h("option", { value: n }, n)));
  select.value = names.includes(current) ? current : "";
}

function fillAssignees(profiles) {
  const select = $("#create-form select[name=assignee]");
  const current = select.value;
  clear(select).append(h("option", { value: "" }, "(unassigned)"),
    ...profiles.map((p) => h("option", { value: p.name }, p.name)));
  select.value = current;
  schedules.fillAssignees(profiles);
}

// ---- live updates ------------------------------------------------------------------------------

function connectLive() {
  if (ui.source) ui.source.close();
  const source = new EventSource(withBoard("/api/events"));
  ui.source = source;
  source.addEventListener("open", () => {
    connection("live");
    ui.live = true;
    banner(null);
    scheduleRefresh(0); // whatever happened while we were away
  });
  source.addEventListener("error", () => {
    ui.live = false;
    connection("reconnecting");
    if (source.readyState === EventSource.CLOSED) setTimeout(connectLive, 2000);
  });
  source.addEventListener("task", (ev) => {
    const event = JSON.parse(ev.data);
    scheduleRefresh();
    if (schedules.open && (event.task_id === null || event.kind === "created")) schedules.load();
    if (drawer.open && event.task_id === drawer.taskId) {
      clearTimeout(ui.drawerTimer);
      ui.drawerTimer = setTimeout(() => drawer.refresh(), 150);
    }
  });
  source.addEventListener("overflow", () => { source.close(); connectLive(); });
}

// ---- drawer and routing ------------------------------------------------------------------------

function openTask(id) {
  if (location.hash !== `#task-${id}`) location.hash = `task-${id}`;
  else route();
}

function closeTask() {
  const id = drawer.taskId;
  drawer.close();
  boardView.select(null);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  const card = document.querySelector(`.card[data-id="${id}"]`);
  if (card) card.focus();
}

function route() {
  if (location.hash === "#schedules") { schedules.show(); return; }
  const m = /^#task-(\d+)$/.exec(location.hash);
  if (m) {
    const id = Number(m[1]);
    drawer.show(id);
    boardView.select(id);
  } else if (drawer.open) {
    drawer.close();
    boardView.select(null);
  }
}

async function decompose(id, button) {
  button.disabled = true;
  button.textContent = "Decomposing…";
  try {
    await post(`/api/tasks/${id}/decompose`);
    button.textContent = "Decomposed";
  } catch (err) {
    button.disabled = false;
    button.textContent = "Decompose";
    button.title = err.message;
    banner(`#${id}: ${err.message}`);
  }
  scheduleRefresh(0);
}

// ---- create form ---------------------------------------------------------------------------

function setupCreate() {
  const dialog = $("#create-dialog");
  const form = $("#create-form");
  const error = form.querySelector(".form-error");
  form.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const parents = String(f.get("parents") || "").split(/[\s,]+/).filter(Boolean).map((x) => Number(x.replace("#", "")));
    if (parents.some((p) => !Number.isInteger(p))) {
      error.hidden = false; error.textContent = "Parents must be task ids like 12, 14"; return;
    }
    const body = {
      title: String(f.get("title") || "").trim(), body: String(f.get("body") || ""),
      assignee: f.get("assignee") || null, priority: Number(f.get("priority") || 0),
      parents, triage: f.get("triage") === "on",
    };
    if (f.get("start_at")) body.start_at = String(f.get("start_at")); // read in kanban.timezone
    try {
      const created = await post("/api/tasks", body);
      error.hidden = true;
      form.reset();
      dialog.close();
      if (!ui.live) scheduleRefresh(0); // live: the card arrives through the event stream
      return created;
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
    }
  });
}

async function openCreate() {
  $("#create-dialog").showModal();
  $("#create-form input[name=title]").focus();
}

// ---- keyboard ------------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement || target?.isContentEditable;
}

function setupKeys() {
  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const anyDialog = document.querySelector("dialog[open]");
    if (ev.key === "Escape") {
      if (anyDialog) return; // the dialog closes itself
      if (typing(ev.target) && ev.target.id === "search" && ev.target.value) { ev.target.value = ""; scheduleRefresh(0); return; }
      if (drawer.open) { ev.preventDefault(); closeTask(); return; }
      if (chat.open) { ev.preventDefault(); toggleChat(false); return; }
      return;
    }
    if (anyDialog || typing(ev.target)) return;
    if (ev.key === "/") { ev.preventDefault(); $("#search").focus(); $("#search").select(); }
    else if (ev.key === "c") { ev.preventDefault(); openCreate(); }
    else if (ev.key.startsWith("Arrow")) {
      const from = document.activeElement;
      if (from && from.closest && from.closest(".card")) {
        if (boardView.move(from, ev.key)) ev.preventDefault();
      } else if (!drawer.open) {
        const first = document.querySelector(".column.current .card, .card");
        if (first) { ev.preventDefault(); first.focus(); }
      }
    }
  });
}

async function toggleChat(force) {
  const shown = await chat.toggle(force);
  $("#chat-toggle").setAttribute("aria-pressed", String(shown));
}

// ---- boot ----------------------------------------------------------------------------------

async function loadBoards() {
  const select = $("#board-select");
  const params = new URLSearchParams(location.search);
  try {
    const data = await get("/api/boards", { board: false });
    state.board = params.get("board") || data.default;
    clear(select).append(...data.boards.map((b) => h("option", { value: b.slug }, b.name === b.slug ? b.slug : `${b.name} (${b.slug})`)));
    if (!data.boards.some((b) => b.slug === state.board)) select.append(h("option", { value: state.board }, state.board));
    select.value = state.board;
  } catch (err) {
    state.board = params.get("board") || null;
  }
  select.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("board", select.value);
    url.hash = "";
    location.assign(url.toString());
  });
}

async function boot() {
  setupCreate();
  setupKeys();
  let search = null;
  $("#search").addEventListener("input", () => { clearTimeout(search); search = setTimeout(loadBoard, 200); });
  $("#assignee-filter").addEventListener("change", () => loadBoard());
  $("#show-archived").addEventListener("change", (ev) => { ui.archived = ev.target.checked; boardView.first = true; loadBoard(); });
  $("#new-task").addEventListener("click", openCreate);
  $("#chat-toggle").addEventListener("click", () => toggleChat());
  $("#chat-close").addEventListener("click", () => toggleChat(false));
  window.addEventListener("hashchange", route);
  let session = { chat: false };
  try { session = await get("/api/session", { board: false }); } catch { /* shown by loadBoard */ }
  if (!session.chat) { chat.enabled = false; $("#chat-toggle").title = "The web chat runs with `relayboard gateway run`"; }
  state.timezone = session.timezone || null;
  boardView.timezone = drawer.timezone = state.timezone;
  if (state.timezone) $("#create-form .tz-name").textContent = state.timezone;
  await loadBoards();
  await loadBoard();
  connectLive();
  orch.load();
  get("/api/profiles", { board: false }).then(fillAssignees).catch(() => {});
  route();
  if (new URLSearchParams(location.search).get("chat") === "1") toggleChat(true);
  setInterval(() => { if (!ui.live) return; boardView.render(ui.lastData); }, 60000); // ages
}

boot();
