// The chat panel: the web chat platform adapter's thread, live over server-sent events.
import { h, clear, icon, clock, size } from "./dom.js";
import { post, get, upload } from "./api.js";

const THREAD = "main";
// The router repeats "typing" every 4 s while it works; a missed repeat ends the indicator.
const TYPING_MS = 6500;

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
    this.pending = []; // files chosen for the next message: { name, size, ref, promise, el }
    this.typingEl = root.querySelector("#chat-typing");
    this.typingTimer = null;
    this.fileInput = root.querySelector("#chat-file");
    this.tray = root.querySelector("#chat-attachments");
    root.querySelector("#chat-attach").addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      this.attach([...this.fileInput.files]);
      this.fileInput.value = ""; // choosing the same file again still fires "change"
      this.input.focus();
    });
    input.addEventListener("paste", (ev) => {
      const files = [...(ev.clipboardData?.files || [])];
      if (files.length) { ev.preventDefault(); this.attach(files); }
    });
    root.addEventListener("dragover", (ev) => {
      if (![...(ev.dataTransfer?.types || [])].includes("Files")) return;
      ev.preventDefault();
      root.classList.add("dropping");
    });
    root.addEventListener("dragleave", (ev) => { if (ev.target === root) root.classList.remove("dropping"); });
    root.addEventListener("drop", (ev) => {
      root.classList.remove("dropping");
      const files = [...(ev.dataTransfer?.files || [])];
      if (files.length) { ev.preventDefault(); this.attach(files); }
    });
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
      // Focus first: once the history has loaded the person may already be elsewhere.
      this.input.focus();
      await this.connect();
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
      if (m.thread !== THREAD) return;
      if (m.role !== "user") this.typing(false);
      this.add(m);
      this.placeholder();
    });
    this.source.addEventListener("typing", (ev) => {
      if (JSON.parse(ev.data).thread === THREAD) this.typing(true);
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

  // "Relayboard is typing…" while the gateway works on this thread; the element is a polite
  // live region that stays in the page, so a screen reader announces the text when it appears.
  typing(on) {
    clearTimeout(this.typingTimer);
    const el = this.typingEl;
    if (on) {
      if (!el.classList.contains("on")) {
        el.classList.add("on");
        el.querySelector(".typing-text").textContent = "Relayboard is typing…";
      }
      this.typingTimer = setTimeout(() => this.typing(false), TYPING_MS);
    } else if (el.classList.contains("on")) {
      el.classList.remove("on");
      el.querySelector(".typing-text").textContent = "";
    }
  }

  // Each file is uploaded as soon as it is chosen (so a refusal — too large — is said at
  // once); the message then carries the refs of those that arrived.
  attach(files) {
    for (const file of files) {
      const item = { name: file.name, size: file.size, ref: null, el: null };
      const remove = h("button", { type: "button", class: "icon", "aria-label": `Remove ${file.name}`, title: "Remove" }, "×");
      const state = h("span", { class: "muted" }, "uploading…");
      item.el = h("li", { class: "attachment uploading" }, icon("file"), h("span", { class: "name" }, file.name), state, remove);
      remove.addEventListener("click", () => { this.drop(item); this.input.focus(); });
      item.promise = upload("/chat/upload", file).then((answer) => {
        item.ref = answer.ref;
        item.el.classList.remove("uploading");
        state.textContent = size(answer.size);
      }, (err) => {
        this.drop(item);
        this.showError(`Not attached: ${err.message}`);
      });
      this.pending.push(item);
      this.tray.append(item.el);
    }
    this.tray.hidden = !this.pending.length;
  }

  drop(item) {
    this.pending = this.pending.filter((p) => p !== item);
    item.el.remove();
    this.tray.hidden = !this.pending.length;
  }

  async send() {
    const text = this.input.value.trim();
    if (!text && !this.pending.length) return;
    this.input.disabled = true;
    try {
      await Promise.all(this.pending.map((p) => p.promise));
      const sending = this.pending.filter((p) => p.ref);
      if (!text && !sending.length) return;
      const body = { thread: THREAD, text };
      if (sending.length) body.files = sending.map((p) => p.ref);
      const m = await post("/chat/messages", body, { board: false });
      this.input.value = "";
      sending.forEach((p) => this.drop(p));
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
