// The Orchestration pill (Auto / Manual, one click flips kanban.auto_decompose in config.yaml)
// and the Orchestration panel (pickers, auto-promote, profile descriptions, pairing requests).
import { h, clear } from "./dom.js";
import { api, get, post } from "./api.js";

export class Orchestration {
  constructor({ pill, dialog, openButton, onProfiles }) {
    this.pill = pill;
    this.dialog = dialog;
    this.onProfiles = onProfiles;
    this.data = null;
    pill.addEventListener("click", () => this.flip());
    openButton.addEventListener("click", () => this.openPanel());
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    this.$("#orch-auto").addEventListener("change", (ev) => this.save({ auto_decompose: ev.target.checked }));
    this.$("#orch-promote").addEventListener("change", (ev) => this.save({ auto_promote_children: ev.target.checked }));
    this.$("#orch-orchestrator").addEventListener("change", (ev) => this.save({ orchestrator_profile: ev.target.value || null }));
    this.$("#orch-default").addEventListener("change", (ev) => this.save({ default_assignee: ev.target.value || null }));
  }

  $(sel) { return this.dialog.querySelector(sel); }

  async load() {
    try {
      this.show(await get("/api/orchestration", { board: false }));
    } catch (err) {
      this.pill.textContent = "Orchestration: ?";
      this.pill.title = `could not read the settings: ${err.message}`;
    }
  }

  show(data) {
    this.data = data;
    const auto = data.auto_decompose;
    this.pill.textContent = `Orchestration: ${auto ? "Auto" : "Manual"}`;
    this.pill.className = `pill ${auto ? "auto" : "manual"}`;
    this.pill.setAttribute("aria-pressed", String(auto));
    this.pill.setAttribute("aria-label", `Orchestration: ${auto ? "Auto" : "Manual"}. Click to switch to ${auto ? "Manual" : "Auto"}.`);
    this.$("#orch-auto").checked = auto;
    this.$("#orch-promote").checked = data.auto_promote_children;
    this.$("#orch-file").textContent = data.config_file;
    this.$("#orch-sandbox").textContent = data.sandbox;
    fillPicker(this.$("#orch-orchestrator"), data.profiles, data.orchestrator_profile);
    fillPicker(this.$("#orch-default"), data.profiles, data.default_assignee);
    this.$("#orch-orchestrator-resolved").textContent = `in effect: ${data.resolved.orchestrator_profile}`;
    this.$("#orch-default-resolved").textContent = `in effect: ${data.resolved.default_assignee}`;
  }

  async flip() {
    if (!this.data) return this.load();
    this.pill.disabled = true;
    try { await this.save({ auto_decompose: !this.data.auto_decompose }); } finally { this.pill.disabled = false; }
  }

  async save(changes) {
    const error = this.$(".form-error");
    try {
      this.show(await api("PUT", "/api/orchestration", changes, { board: false }));
      error.hidden = true;
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
      if (this.data) this.show(this.data);
    }
  }

  async openPanel() {
    await this.load();
    await this.loadProfiles();
    await this.loadPairing();
    this.dialog.showModal();
  }

  async loadPairing() {
    const list = this.$("#pairing-list");
    let data;
    try { data = await get("/api/pairing", { board: false }); } catch (err) {
      clear(list).append(h("p", { class: "form-error" }, err.message));
      return;
    }
    clear(list);
    if (!data.pending.length) list.append(h("p", { class: "muted" }, "No requests waiting."));
    for (const p of data.pending) {
      const status = h("span", { class: "muted", role: "status" },
        `${p.platform} · user ${p.user_id} · expires in ${Math.ceil(p.expires_in_seconds / 60)} min`);
      const decide = (path, body, label) => {
        const button = h("button", { type: "button", class: path === "approve" ? "primary" : "" }, label);
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            await post(`/api/pairing/${encodeURIComponent(p.code)}/${path}`, body, { board: false });
            await this.loadPairing();
          } catch (err) { status.textContent = err.message; button.disabled = false; }
        });
        return button;
      };
      list.append(h("div", { class: "profile pairing", dataset: { code: p.code } },
        h("div", { class: "name" }, h("code", {}, p.code), " ", p.user_name || p.user_id, " ", status),
        h("div", { class: "buttons" }, decide("approve", {}, "Approve"),
          decide("approve", { admin: true }, "Approve as admin"), decide("deny", {}, "Deny"))));
    }
  }

  async loadProfiles() {
    const list = this.$("#profile-list");
    let profiles;
    try { profiles = await get("/api/profiles", { board: false }); } catch (err) {
      clear(list).append(h("p", { class: "form-error" }, err.message));
      return;
    }
    this.onProfiles(profiles);
    clear(list);
    if (!profiles.length) {
      list.append(h("p", { class: "muted" }, "No profiles yet. Create one with ", h("code", {}, "relayboard profile create NAME"),
        " — or the demo: ", h("code", {}, "relayboard profile example charts --kind chart")));
    }
    for (const p of profiles) {
      const text = h("textarea", { rows: 2, "aria-label": `Description of ${p.name}` });
      text.value = p.description || "";
      const status = h("span", { class: "muted", role: "status" }, p.description_auto ? "generated" : (p.description ? "written by a person" : "no description"));
      const save = h("button", { type: "button", class: "primary" }, "Save");
      const auto = h("button", { type: "button" }, "Auto-generate");
      save.addEventListener("click", async () => {
        try {
          await api("PATCH", `/api/profiles/${encodeURIComponent(p.name)}`, { description: text.value }, { board: false });
          status.textContent = "saved";
        } catch (err) { status.textContent = err.message; }
      });
      auto.addEventListener("click", async () => {
        auto.disabled = true;
        status.textContent = "generating…";
        try {
          const out = await post(`/api/profiles/${encodeURIComponent(p.name)}/describe-auto`, {}, { board: false });
          text.value = out.description;
          status.textContent = "generated";
        } catch (err) { status.textContent = err.message; } finally { auto.disabled = false; }
      });
      list.append(h("div", { class: "profile" }, h("div", { class: "name" }, p.name, status), text,
        h("div", { class: "buttons" }, save, auto)));
    }
  }
}

function fillPicker(select, names, value) {
  clear(select);
  select.append(h("option", { value: "" }, "(fallback: default profile)"));
  for (const name of names) select.append(h("option", { value: name }, name));
  if (value && !names.includes(value)) select.append(h("option", { value }, `${value} (missing)`));
  select.value = value || "";
}
