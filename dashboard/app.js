/*
 * apikeyd dashboard. The credential (an API key or an admin token) lives in
 * this module's memory only: never in localStorage, sessionStorage or a
 * cookie (see SECURITY.md). Reloading the page signs out. Every string from
 * the API is put in the page as text (textContent), never as HTML.
 */
"use strict";
(() => {
  let credential = null;
  let sandbox = false;
  const $ = (id) => document.getElementById(id);

  /* An element with text and attributes; children appended. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  /* A table whose cells carry their column's name (data-label): narrow screens show each row as a card. */
  function table(label, headers, rows) {
    for (const tr of rows)
      [...tr.children].forEach((td, i) => td.setAttribute("data-label", headers[i]));
    return el("div", { class: "scroll" }, el("table", { "aria-label": label },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows)));
  }

  class ApiError extends Error {}

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + credential };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) throw new ApiError(data && data.error ? data.error.message : r.status + " " + r.statusText);
    return data;
  }

  function alertBox(message) {
    const box = $("alert");
    box.textContent = message || "";
    box.hidden = !message;
  }

  /* "3 minutes ago", with the exact time on hover; `past` words a time gone by (e.g. "expired"). */
  function timeCell(iso, past) {
    if (!iso) return el("td", { text: "never" });
    const t = Date.parse(iso), s = Math.round((Date.now() - t) / 1000);
    const ago = Math.abs(s);
    const unit = ago < 60 ? [ago, "second"] : ago < 3600 ? [Math.round(ago / 60), "minute"]
      : ago < 86400 ? [Math.round(ago / 3600), "hour"] : [Math.round(ago / 86400), "day"];
    const words = unit[0] + " " + unit[1] + (unit[0] === 1 ? "" : "s");
    return el("td", {}, el("time", { datetime: iso, title: iso,
      text: s >= 0 ? (past ? past + " " : "") + words + " ago" : "in " + words }));
  }

  async function act(fn) {
    alertBox("");
    try { await fn(); } catch (e) { alertBox(e instanceof ApiError ? e.message : String(e)); }
  }

  /* ---- keys ---- */

  async function showKeys() {
    const data = await api("GET", "/v1/account/api-keys/");
    const keys = table("API keys", ["Name", "Type", "Prefix", "Active", "Primary", "Created", "Last used", "Expires",
      "Rotation", "Leaked", "Actions"], data.api_keys.map(keyRow));
    $("view").replaceChildren(
      el("h2", { text: "API keys" }),
      el("p", { text: sandbox ? "Signed in with a sandbox key: only sandbox keys are shown, and only sandbox keys can be made."
        : "The primary key cannot be deactivated, deleted or given an expiry; make another key primary first, or rotate it." }),
      el("div", { class: "toolbar" }, el("button", { type: "button", onclick: createDialog, text: "Create a key" }),
        sandbox ? "" : el("button", { type: "button", onclick: () => act(() => showAudit(null, "")), text: "Audit log" })),
      keys);
    performance.mark("keys-rendered"); /* for the timing the browser tests report */
  }

  function keyRow(k) {
    const name = el("td", {}, el("span", { text: k.name }));
    /* Why a button is off, said beside it (a disabled button cannot be focused, so a tooltip alone would reach no keyboard user). */
    const why = k.is_primary ? "The primary key stays active, has no expiry and cannot be deleted: make another key primary first."
      : k.leaked_at !== null ? "A key reported leaked stays off and is kept for the record: rotate it to replace it."
      : k.rotated_to !== null ? "Already rotated: this key winds down at its expiry." : null;
    const note = why ? el("p", { class: "note", id: "why-" + k.id, text: why }) : "";
    /* A button of the row; when it is off and the note says why, the note describes it. */
    const button = (text, label, disabled, onclick, title) => el("button", { type: "button", disabled, onclick, text,
      "aria-label": label, "aria-describedby": disabled && why ? "why-" + k.id : null, title: disabled ? title : null });
    const patch = (body) => act(async () => { await api("PATCH", "/v1/account/api-keys/" + k.id, body); await showKeys(); });
    const actions = el("td", { class: "actions" },
      button("Rename", "Rename " + k.name, false, () => rename(k, name)),
      button(k.is_active ? "Deactivate" : "Activate", (k.is_active ? "Deactivate " : "Activate ") + k.name,
        k.is_primary || k.leaked_at !== null, () => patch({ is_active: !k.is_active })),
      button("Make primary", "Make " + k.name + " primary", k.is_primary || !k.is_active || k.key_type !== "production"
        || k.expires_at !== null || k.rotated_to !== null || k.leaked_at !== null, () => patch({ is_primary: true }),
        k.is_primary ? null : "Only an active production key without an expiry can be primary"),
      button("Rotate", "Rotate " + k.name, k.rotated_to !== null, () => rotateDialog(k)),
      button("Delete", "Delete " + k.name, k.is_primary || k.leaked_at !== null, () => deleteDialog(k)),
      note);
    return el("tr", { "data-key-id": String(k.id) },
      name, el("td", { text: k.key_type }), el("td", {}, el("code", { class: "prefix", text: k.key_prefix })),
      el("td", { text: k.is_active ? "yes" : "no" }), el("td", { text: k.is_primary ? "yes" : "no" }),
      timeCell(k.created_at), timeCell(k.last_used), k.expires_at ? timeCell(k.expires_at, "expired") : el("td", { text: "never" }),
      el("td", { text: k.rotated_to ? "replaced by #" + k.rotated_to : k.rotated_from ? "replaces #" + k.rotated_from : "" }),
      el("td", { text: k.leaked_at ? "reported " + k.leaked_at : "" }), actions);
  }

  function rename(k, cell) {
    const input = el("input", { value: k.name, "aria-label": "New name for " + k.name, maxlength: 100 });
    const form = el("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault();
      act(async () => { await api("PATCH", "/v1/account/api-keys/" + k.id, { name: input.value }); await showKeys(); }); } },
      input, el("button", { type: "submit", text: "Save" }),
      el("button", { type: "button", onclick: () => act(showKeys), text: "Cancel" }));
    cell.replaceChildren(form);
    input.focus();
  }

  /* A modal dialog with `content`; resolves when it closes. */
  function dialog(title, ...content) {
    const d = el("dialog", { "aria-labelledby": "dialog-title" }, el("h2", { id: "dialog-title", text: title }), ...content);
    document.body.append(d);
    d.addEventListener("close", () => d.remove());
    d.showModal();
    return d;
  }

  function createDialog() {
    const name = el("input", { id: "new-name", required: true, maxlength: 100 });
    const type = el("select", { id: "new-type" },
      ...(sandbox ? ["sandbox"] : ["production", "sandbox"]).map((t) => el("option", { value: t, text: t })));
    const d = dialog("Create a key",
      el("form", { method: "dialog", onsubmit: (ev) => { ev.preventDefault(); act(async () => {
        const made = await api("POST", "/v1/account/api-keys/", { name: name.value, key_type: type.value });
        d.close();
        shownOnce(made);
        await showKeys();
      }); } },
      el("label", { for: "new-name", text: "Name" }), name,
      el("label", { for: "new-type", text: "Type" }), type,
      el("button", { type: "submit", text: "Create" }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" })));
    name.focus();
  }

  /* The new key, shown once: the dialog forgets it when it closes. */
  function shownOnce(made) {
    const code = el("code", { id: "new-key", text: made.api_key });
    const d = dialog("Your new key",
      el("p", { class: "warning", text: made.message }), el("p", {}, code),
      el("button", { type: "button", onclick: () => navigator.clipboard.writeText(code.textContent), text: "Copy" }),
      el("button", { type: "button", onclick: () => { code.textContent = ""; d.close(); }, text: "Done" }));
    d.addEventListener("close", () => { code.textContent = ""; });
  }

  function rotateDialog(k) {
    const grace = el("input", { id: "grace", type: "number", min: 0, max: 2592000, value: 86400 });
    const d = dialog("Rotate " + k.name,
      el("p", { text: "A new key replaces this one; the old key keeps working for the grace period." }),
      el("form", { onsubmit: (ev) => { ev.preventDefault(); act(async () => {
        const made = await api("POST", "/v1/account/api-keys/" + k.id + "/rotate", { grace_period_seconds: Number(grace.value) });
        d.close();
        shownOnce(made);
        await showKeys();
      }); } },
      el("label", { for: "grace", text: "Grace period, seconds" }), grace,
      el("button", { type: "submit", text: "Rotate" }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" })));
  }

  function deleteDialog(k) {
    const d = dialog("Delete " + k.name + "?",
      el("p", { text: "The key " + k.key_prefix + "… (" + k.name + ") stops working at once. This cannot be undone." }),
      el("button", { type: "button", onclick: () => act(async () => {
        await api("DELETE", "/v1/account/api-keys/" + k.id); d.close(); await showKeys(); }), text: "Delete " + k.name }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" }));
  }

  /* ---- audit log ---- */

  /* One page of the account's events (newest first), all or about one key, and a button for the next page. */
  async function showAudit(after, keyId) {
    const q = "limit=50" + (keyId ? "&key_id=" + encodeURIComponent(keyId) : "") + (after ? "&after=" + encodeURIComponent(after) : "");
    const [page, keys] = await Promise.all([api("GET", "/v1/account/audit-log?" + q), api("GET", "/v1/account/api-keys/")]);
    const filter = el("select", { id: "audit-key", onchange: () => act(() => showAudit(null, filter.value)) },
      el("option", { value: "", text: "every key" }),
      ...keys.api_keys.map((k) => el("option", { value: String(k.id), selected: String(k.id) === String(keyId), text: k.name + " (" + k.key_prefix + ")" })));
    const events = table("Audit log", ["When", "Action", "By", "Target", "Changes", "Details"], page.events.map((e) => el("tr", {},
      timeCell(e.at), el("td", { text: e.action }),
      el("td", { text: e.actor.type + (e.actor.prefix ? " " + e.actor.prefix : "") }),
      el("td", { text: e.target.type + " #" + e.target.id }),
      el("td", {}, el("code", { text: e.changes ? JSON.stringify(e.changes) : "" })),
      el("td", {}, el("code", { text: e.details ? JSON.stringify(e.details) : "" })))));
    $("view").replaceChildren(
      el("h2", { text: "Audit log" }),
      el("button", { type: "button", onclick: () => act(showKeys), text: "Back to keys" }),
      el("label", { for: "audit-key", text: "Events about" }), filter,
      events,
      page.next_cursor ? el("button", { type: "button", onclick: () => act(() => showAudit(page.next_cursor, keyId)), text: "Older events" }) : "");
  }

  /* ---- operators ---- */

  /* A page of accounts, all or searched by name or external id; each with suspend/reactivate and "issue a primary key". */
  async function showAccounts(search, by, after) {
    const term = (search || "").trim();
    const q = "limit=50" + (term ? (by === "external_id" ? "&external_id=" : "&name=") + encodeURIComponent(term) : "") +
      (after ? "&after=" + encodeURIComponent(after) : "");
    const page = await api("GET", "/v1/admin/accounts?" + q);
    const input = el("input", { id: "account-search", type: "search", value: term, "aria-describedby": "account-search-help" });
    const field = el("select", { id: "account-search-by" },
      el("option", { value: "name", selected: by !== "external_id", text: "name" }),
      el("option", { value: "external_id", selected: by === "external_id", text: "external id" }));
    const rows = page.accounts.map((a) => el("tr", { "data-account-id": String(a.id) },
      el("td", { text: String(a.id) }), el("td", { text: a.name }), el("td", { text: a.external_id || "" }),
      el("td", { text: a.status }), el("td", { text: String(a.key_count) }),
      el("td", { class: "actions" },
        el("button", { type: "button", "aria-label": (a.status === "active" ? "Suspend " : "Reactivate ") + a.name,
          text: a.status === "active" ? "Suspend" : "Reactivate",
          onclick: () => act(async () => {
            await api("PATCH", "/v1/admin/accounts/" + a.id, { status: a.status === "active" ? "suspended" : "active" });
            await showAccounts(term, by, null);
          }) }),
        el("button", { type: "button", "aria-label": "Issue a primary key for " + a.name, text: "Issue a primary key",
          onclick: () => act(async () => {
            const made = await api("POST", "/v1/admin/accounts/" + a.id + "/keys",
              { name: "Production Key", key_type: "production", make_primary: true });
            shownOnce(made);
            await showAccounts(term, by, null);
          }) }))));
    $("view").replaceChildren(
      el("h2", { text: "Accounts" }),
      el("form", { role: "search", onsubmit: (ev) => { ev.preventDefault(); act(() => showAccounts(input.value, field.value, null)); } },
        el("label", { for: "account-search-by", text: "Search by" }), field,
        el("label", { for: "account-search", text: "Search for" }), input,
        el("p", { id: "account-search-help", text: "A name matches anywhere in it, in any case; an external id matches exactly." }),
        el("button", { type: "submit", text: "Search" })),
      table("Accounts", ["Id", "Name", "External id", "Status", "Keys", "Actions"], rows),
      page.next_cursor ? el("button", { type: "button", onclick: () => act(() => showAccounts(term, by, page.next_cursor)), text: "More accounts" }) : "");
  }

  /* ---- sign in and out ---- */

  function signOut() {
    credential = null;
    $("view").replaceChildren();
    $("session").hidden = true;
    $("signin").hidden = false;
    alertBox("");
    $("credential").focus();
  }

  $("signout").addEventListener("click", signOut);
  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    credential = $("credential").value.trim();
    $("credential").value = "";
    sandbox = /^[a-z0-9]+_sand_/.test(credential);
    const operator = /^[a-z0-9]+_admin_/.test(credential);
    performance.mark("signin");
    act(async () => {
      try {
        await (operator ? showAccounts("", "name", null) : showKeys());
      } catch (e) {
        credential = null;
        throw e;
      }
      $("signin").hidden = true;
      $("session").hidden = false;
      $("main").focus();
    });
  });
})();
