// The chat panel: the web chat platform adapter's thread, live over server-sent events.
import { h, clear, icon, clock, size } from "./dom.js";
import { post, get } from "./api.js";

const THREAD = "main";

export class Chat {
  constructor(root, { log, form, input, error, onCommandSent }) {
    this.root = root;
    this.log = log;
    this.form = form;
    this.input = input;
    this.error = error;
    this.onCommandSent = onCommandSent;
    this.seen = new Set();
    this.source = null;
    this.enabled = true;
    form.addEventListener("submit", (ev) => { ev.preventDefault(); this.send(); });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); this.send(); }
    });
    root.querySelectorAll("[data-hint]").forEach((b) => b.addEventListener("click", () => {
      input.value = b.dataset.hint;
      input.focus();
    }));
  }

  get open() { return !this.root.hidden; }

  async toggle(force) {
    const show = force ?? this.root.hidden;
    this.root.hidden = !show;
    if (show) {
      await this.connect();
      this.input.focus();
    }
    return show;
  }

  async connect() {
    if (this.source || !this.enabled) return;
    try {
      const data = await get(`/chat/messages?thread=${THREAD}`, { board: false });
      clear(this.log);
      this.seen.clear();
      data.messages.forEach((m) => this.add(m));
      this.placeholder();
    } catch (err) {
      this.showError(err.status === 404 ? "The web chat is not enabled on this gateway." : `Chat unavailable: ${err.message}`);
      if (err.status === 404) { this.enabled = false; return; }
    }
    const last = Math.max(0, ...[...this.seen]);
    this.source = new EventSource(`/chat/stream?since=${last}`);
    this.source.addEventListener("message", (ev) => {
      const m = JSON.parse(ev.data);
      if (m.thread === THREAD) { this.add(m); this.placeholder(); }
    });
    this.source.addEventListener("open", () => this.showError(null));
    this.source.addEventListener("error", () => this.showError("Chat connection lost — reconnecting…"));
  }

  placeholder() {
    const empty = this.log.querySelector(".chat-empty");
    if (this.seen.size && empty) empty.remove();
    if (!this.seen.size && !empty) {
      this.log.append(h("div", { class: "chat-empty" },
        "Talk to the board like in Slack or Telegram.", h("br"),
        "Try ", h("code", {}, "/help"), " or ", h("code", {}, "/kanban create Chart the sales --assignee charts")));
    }
  }

  add(m) {
    if (this.seen.has(m.seq)) return;
    this.seen.add(m.seq);
    const bubble = h("div", { class: `bubble ${m.role === "user" ? "user" : "bot"}`, "data-seq": m.seq },
      m.text ? h("span", { class: "text" }, m.text) : null,
      m.files.map((f) => {
        const url = `/chat/${f.url}`;
        if (f.kind === "image") {
          return h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: f.name, loading: "lazy" }));
        }
        return h("a", { class: "doc-chip", href: `${url}?download=1`, download: f.name }, icon("file"), f.name,
          h("span", { class: "muted" }, size(f.size)));
      }),
      h("span", { class: "when" }, clock(m.created_at)));
    this.log.append(bubble);
    this.log.scrollTop = this.log.scrollHeight;
    const img = bubble.querySelector("img");
    if (img) img.addEventListener("load", () => { this.log.scrollTop = this.log.scrollHeight; });
  }

  async send() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.disabled = true;
    try {
      const m = await post("/chat/messages", { thread: THREAD, text }, { board: false });
      this.input.value = "";
      this.add(m);
      this.placeholder();
      this.showError(null);
      if (text.startsWith("/")) this.onCommandSent();
    } catch (err) {
      this.showError(`Not sent: ${err.message}`);
    } finally {
      this.input.disabled = false;
      this.input.focus();
    }
  }

  showError(message) {
    this.error.hidden = !message;
    this.error.textContent = message || "";
  }
}
