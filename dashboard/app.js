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

  /* An SVG element (the usage chart), as el() makes HTML ones. */
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  /* A list typed as text: items separated by spaces, commas or new lines, repeats dropped; nothing typed is null. */
  function listOf(text) {
    const items = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
    return items.length ? items : null;
  }
  /* Scopes as the API keeps them: sorted, without repeats (names are ASCII, so sort() is bytewise). */
  const scopesOf = (text) => { const l = listOf(text); return l && l.sort(); };
  const sameList = (a, b) => JSON.stringify(a) === JSON.stringify(b);

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

  /* A dialog's own error line: a modal dialog hides the page's alert behind it, so its forms say the API's message inside it. */
  const dialogError = () => el("p", { id: "dialog-error", role: "alert", hidden: true });
  async function actIn(box, fn) {
    box.textContent = "";
    box.hidden = true;
    try { await fn(); } catch (e) { box.textContent = e instanceof ApiError ? e.message : String(e); box.hidden = false; }
  }

  /* ---- keys ---- */

  async function showKeys() {
    const data = await api("GET", "/v1/account/api-keys/");
    const keys = table("API keys", ["Name", "Type", "Prefix", "Active", "Primary", "Created", "Last used", "Expires",
      "Rotation", "Leaked", "Access", "Actions"], data.api_keys.map(keyRow));
    $("view").replaceChildren(
      el("h2", { text: "API keys" }),
      el("p", { text: sandbox ? "Signed in with a sandbox key: only sandbox keys are shown, and only sandbox keys can be made."
        : "The primary key cannot be deactivated, deleted, or given an expiry or scopes; make another key primary first, or rotate it." }),
      el("div", { class: "toolbar" }, el("button", { type: "button", onclick: createDialog, text: "Create a key" }),
        sandbox ? "" : el("button", { type: "button", onclick: () => act(() => showAudit(null, "")), text: "Audit log" }),
        el("button", { type: "button", onclick: () => act(() => showUsage(null, "hour")), text: "Account usage" })),
      keys);
    performance.mark("keys-rendered"); /* for the timing the browser tests report */
  }

  function keyRow(k) {
    const name = el("td", {}, el("span", { text: k.name }));
    /* Why a button is off, said beside it (a disabled button cannot be focused, so a tooltip alone would reach no keyboard user). */
    const why = k.is_primary ? "The primary key stays active and unrestricted (no scopes), has no expiry and cannot be deleted: make another key primary first."
      : k.leaked_at !== null ? "A key reported leaked stays off and is kept for the record: rotate it to replace it."
      : k.rotated_to !== null ? "Already rotated: this key winds down at its expiry." : null;
    const note = why ? el("p", { class: "note", id: "why-" + k.id, text: why }) : "";
    /* A button of the row; when it is off and the note says why, the note describes it. */
    const button = (text, label, disabled, onclick, title) => el("button", { type: "button", disabled, onclick, text,
      "aria-label": label, "aria-describedby": disabled && why ? "why-" + k.id : null, title: disabled ? title : null });
    const patch = (body) => act(async () => { await api("PATCH", "/v1/account/api-keys/" + k.id, body); await showKeys(); });
    const actions = el("td", { class: "actions" },
      button("Rename", "Rename " + k.name, false, () => rename(k, name)),
      button("Access", "Edit access of " + k.name, false, () => accessDialog(k)),
      button(k.is_active ? "Deactivate" : "Activate", (k.is_active ? "Deactivate " : "Activate ") + k.name,
        k.is_primary || k.leaked_at !== null, () => patch({ is_active: !k.is_active })),
      button("Make primary", "Make " + k.name + " primary", k.is_primary || !k.is_active || k.key_type !== "production"
        || k.expires_at !== null || k.rotated_to !== null || k.leaked_at !== null || k.scopes !== null, () => patch({ is_primary: true }),
        k.is_primary ? null : "Only an active production key without an expiry or scopes can be primary"),
      button("Rotate", "Rotate " + k.name, k.rotated_to !== null, () => rotateDialog(k)),
      button("Usage", "Usage of " + k.name, false, () => act(() => showUsage(k, "hour"))),
      button("Delete", "Delete " + k.name, k.is_primary || k.leaked_at !== null, () => deleteDialog(k)),
      note);
    return el("tr", { "data-key-id": String(k.id) },
      name, el("td", { text: k.key_type }), el("td", {}, el("code", { class: "prefix", text: k.key_prefix })),
      el("td", { text: k.is_active ? "yes" : "no" }), el("td", { text: k.is_primary ? "yes" : "no" }),
      timeCell(k.created_at), timeCell(k.last_used), k.expires_at ? timeCell(k.expires_at, "expired") : el("td", { text: "never" }),
      el("td", { text: k.rotated_to ? "replaced by #" + k.rotated_to : k.rotated_from ? "replaces #" + k.rotated_from : "" }),
      el("td", { text: k.leaked_at ? "reported " + k.leaked_at : "" }), accessCell(k), actions);
  }

  /* What a key may do and from where, in two short lines: its scopes (or "unrestricted"), its allowlist (or "any address").
     A long list shows its first items, the rest behind a disclosure. */
  function accessCell(k) {
    const items = (list, none) => {
      if (!list) return [el("span", { class: "none", text: none })];
      const codes = (l) => l.flatMap((s, i) => [i ? " " : "", el("code", { text: s })]);
      return list.length <= 4 ? codes(list)
        : [...codes(list.slice(0, 3)), " ", el("details", {}, el("summary", { text: (list.length - 3) + " more" }), ...codes(list.slice(3)))];
    };
    return el("td", { class: "access" },
      el("div", { class: "scopes" }, el("span", { class: "what", text: "Scopes: " }), ...items(k.scopes, "unrestricted")),
      el("div", { class: "ips" }, el("span", { class: "what", text: "From: " }), ...items(k.allowed_ips, "any address")),
      el("div", { class: "rate" }, el("span", { class: "what", text: "Rate: " }), k.rate_limit
        ? el("span", { text: rateText(k.rate_limit) }) : el("span", { class: "none", text: "no limit" })),
      el("div", { class: "quota" }, el("span", { class: "what", text: "Quota: " }), ...quotaItems(k)));
  }

  /* A key's quota at a glance: "4,321 left" (bold; red at 0), and with a refill " of 100,000 / month"; "unlimited" without one. */
  function quotaItems(k) {
    if (k.remaining === null) return [el("span", { class: "none", text: "unlimited" })];
    return [el("strong", { class: k.remaining === 0 ? "left spent" : "left", text: grouped(k.remaining) + " left" }),
      k.refill ? " of " + grouped(k.refill.amount) + " / " + k.refill.interval : ""];
  }
  /* 100000 as "100,000" (the same on every browser, whatever its language). */
  const grouped = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  /* A rate limit in words: "1000 per 60 s". */
  function rateText(r) {
    return r.limit + " per " + r.window_seconds + " s";
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

  /* The scopes and allowlist fields of the create and edit forms (ids `prefix`-scopes and `prefix`-ips), with their help. */
  function accessFields(prefix, k, lockedWhy) {
    const scopes = el("input", { id: prefix + "-scopes", value: k && k.scopes ? k.scopes.join(" ") : "", disabled: !!lockedWhy,
      autocomplete: "off", spellcheck: "false", "aria-describedby": prefix + "-scopes-help" });
    const ips = el("textarea", { id: prefix + "-ips", rows: 3, spellcheck: "false", "aria-describedby": prefix + "-ips-help" });
    ips.value = k && k.allowed_ips ? k.allowed_ips.join("\n") : "";
    /* Creating, an empty field is left out of the request, and the API gives what the signed-in key has. */
    const inherit = (what, its) => k ? "." : " (or, signed in with a key that has " + what + ", " + its + ").";
    const fields = [
      el("label", { for: prefix + "-scopes", text: "Scopes" }), scopes,
      el("p", { class: "note", id: prefix + "-scopes-help", text: lockedWhy
        || "Names separated by spaces or commas, e.g. posts:read billing:*. Empty: unrestricted" + inherit("scopes", "its scopes") }),
      el("label", { for: prefix + "-ips", text: "Allowed addresses" }), ips,
      el("p", { class: "note", id: prefix + "-ips-help", text: "IP addresses or CIDR blocks (203.0.113.0/24, 2001:db8::/32), "
        + "separated by commas, spaces or new lines. Empty: any address" + inherit("an allowlist", "its allowlist") })];
    /* The rate limit: requests per window of seconds; both empty: no limit. Numbers go to the API as typed. */
    const rate = el("input", { id: prefix + "-rate", inputmode: "numeric", autocomplete: "off", "aria-describedby": prefix + "-rate-help",
      value: k && k.rate_limit ? String(k.rate_limit.limit) : "" });
    const per = el("input", { id: prefix + "-window", inputmode: "numeric", autocomplete: "off", "aria-describedby": prefix + "-rate-help",
      value: k && k.rate_limit ? String(k.rate_limit.window_seconds) : "" });
    fields.push(el("label", { for: prefix + "-rate", text: "Rate limit: requests" }), rate,
      el("label", { for: prefix + "-window", text: "per seconds" }), per,
      el("p", { class: "note", id: prefix + "-rate-help", text: "At most this many requests in each window of this many seconds "
        + "(1 to 86400), e.g. 1000 per 60. Both empty: no limit" + inherit("a rate limit", "its rate limit") }));
    /* The quota: credits left (empty: unlimited) and its refill, an amount each UTC day or month (empty and "no refill": none). */
    const remaining = el("input", { id: prefix + "-remaining", inputmode: "numeric", autocomplete: "off",
      "aria-describedby": prefix + "-remaining-help", value: k && k.remaining !== null ? String(k.remaining) : "" });
    const refill = el("input", { id: prefix + "-refill", inputmode: "numeric", autocomplete: "off", "aria-describedby": prefix + "-refill-help",
      value: k && k.refill ? String(k.refill.amount) : "" });
    const every = k && k.refill ? k.refill.interval : "";
    const interval = el("select", { id: prefix + "-interval", "aria-describedby": prefix + "-refill-help" },
      ...[["", "no refill"], ["day", "day (UTC)"], ["month", "month (UTC)"]]
        .map(([v, t]) => el("option", { value: v, text: t, selected: v === every })));
    fields.push(el("label", { for: prefix + "-remaining", text: "Quota: credits left" }), remaining,
      el("p", { class: "note", id: prefix + "-remaining-help", text: "Each verification spends one credit (or its X-Cost); with too few "
        + "left, the key is refused (429). Empty: unlimited" + (k ? ". Changing it sets the balance; emptied, the quota and its refill go."
          : " (or, signed in with a key that has a quota, the new key spends from that quota).") }),
      el("label", { for: prefix + "-refill", text: "Refill: credits" }), refill,
      el("label", { for: prefix + "-interval", text: "each" }), interval,
      el("p", { class: "note", id: prefix + "-refill-help", text: "At the start of each UTC day or month the balance becomes this many "
        + "credits (what was left does not carry over). Needs a quota. Empty with no refill: none." }));
    return { scopes, ips, rate, per, remaining, refill, interval, fields };
  }

  function createDialog() {
    const name = el("input", { id: "new-name", required: true, maxlength: 100 });
    const type = el("select", { id: "new-type" },
      ...(sandbox ? ["sandbox"] : ["production", "sandbox"]).map((t) => el("option", { value: t, text: t })));
    const access = accessFields("new", null, null);
    const error = dialogError();
    const d = dialog("Create a key",
      el("form", { method: "dialog", onsubmit: (ev) => { ev.preventDefault(); actIn(error, async () => {
        /* Left empty, a field is left out: the API then gives what the signed-in key has (null for an unrestricted one). */
        const body = { name: name.value, key_type: type.value };
        const scopes = scopesOf(access.scopes.value), ips = listOf(access.ips.value);
        if (scopes) body.scopes = scopes;
        if (ips) body.allowed_ips = ips;
        const rate = rateOf(access);
        if (rate) body.rate_limit = rate;
        const remaining = remainingOf(access), refill = refillOf(access);
        if (remaining !== null) body.remaining = remaining;
        if (refill) body.refill = refill;
        const made = await api("POST", "/v1/account/api-keys/", body);
        d.close();
        shownOnce(made);
        await act(showKeys);
      }); } },
      el("label", { for: "new-name", text: "Name" }), name,
      el("label", { for: "new-type", text: "Type" }), type,
      ...access.fields, error,
      el("button", { type: "submit", text: "Create" }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" })));
    name.focus();
  }

  /* A number field's text: a number when it is one, else the text as typed (the API then says what is wrong, in the dialog). */
  const num = (v) => (/^-?[0-9]+$/.test(v) ? Number(v) : v);

  /* The rate limit the form says: null when both fields are empty. */
  function rateOf(access) {
    const l = access.rate.value.trim(), w = access.per.value.trim();
    if (!l && !w) return null;
    return { limit: num(l), window_seconds: num(w) };
  }

  /* The quota the form says, as rateOf reads the rate limit: the credits left (null when empty), and the refill (null when
     the amount is empty and "no refill" is chosen). */
  const remainingOf = (access) => { const v = access.remaining.value.trim(); return v ? num(v) : null; };
  function refillOf(access) {
    const a = access.refill.value.trim(), every = access.interval.value;
    return !a && !every ? null : { amount: num(a), interval: every };
  }

  /* Edits a key's scopes, allowlist, rate limit and quota; the PATCH carries only what changed (nothing changed: no request).
     The primary's scopes stay null: the field is off, and its help says why. */
  function accessDialog(k) {
    const access = accessFields("edit", k, k.is_primary
      ? "The primary key is always unrestricted: its scopes cannot be set. Make another key primary first to restrict this one." : null);
    const error = dialogError();
    const d = dialog("Access of " + k.name,
      el("form", { onsubmit: (ev) => { ev.preventDefault(); actIn(error, async () => {
        const body = {};
        const scopes = scopesOf(access.scopes.value), ips = listOf(access.ips.value);
        if (!k.is_primary && !sameList(scopes, k.scopes)) body.scopes = scopes;
        if (!sameList(ips, k.allowed_ips)) body.allowed_ips = ips;
        const rate = rateOf(access);
        if (JSON.stringify(rate) !== JSON.stringify(k.rate_limit)) body.rate_limit = rate;
        /* The balance is sent only when retyped: sent as it was shown, it would undo what was spent since. */
        if (access.remaining.value.trim() !== (k.remaining === null ? "" : String(k.remaining))) body.remaining = remainingOf(access);
        const refill = refillOf(access);
        if (JSON.stringify(refill) !== JSON.stringify(k.refill)) body.refill = refill;
        if (Object.keys(body).length) await api("PATCH", "/v1/account/api-keys/" + k.id, body);
        d.close();
        await act(showKeys);
      }); } },
      ...access.fields, error,
      el("button", { type: "submit", text: "Save" }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" })));
    (k.is_primary ? access.ips : access.scopes).focus();
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
    const error = dialogError();
    const d = dialog("Rotate " + k.name,
      el("p", { text: "A new key replaces this one (with the same scopes, allowlist and rate limit, sharing its quota); "
        + "the old key keeps working for the grace period." }),
      el("form", { onsubmit: (ev) => { ev.preventDefault(); actIn(error, async () => {
        const made = await api("POST", "/v1/account/api-keys/" + k.id + "/rotate", { grace_period_seconds: Number(grace.value) });
        d.close();
        shownOnce(made);
        await act(showKeys);
      }); } },
      el("label", { for: "grace", text: "Grace period, seconds" }), grace, error,
      el("button", { type: "submit", text: "Rotate" }),
      el("button", { type: "button", onclick: () => d.close(), text: "Cancel" })));
  }

  function deleteDialog(k) {
    const error = dialogError();
    const d = dialog("Delete " + k.name + "?",
      el("p", { text: "The key " + k.key_prefix + "… (" + k.name + ") stops working at once. This cannot be undone." }), error,
      el("button", { type: "button", onclick: () => actIn(error, async () => {
        await api("DELETE", "/v1/account/api-keys/" + k.id); d.close(); await act(showKeys); }), text: "Delete " + k.name }),
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

  /* ---- usage ---- */

  /* The API's refusal reasons, in its order, and how the page words them. */
  const REASONS = [["inactive", "inactive or leaked"], ["expired", "expired"], ["suspended", "account suspended"],
    ["scope", "missing scope"], ["ip", "address not allowed"], ["rate_limited", "rate limited"], ["quota_exhausted", "quota spent"]];
  const refusedOf = (r) => REASONS.reduce((n, [reason]) => n + r[reason], 0);
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  /* A bucket's start (RFC 3339, UTC) in a few characters: "14:00" for an hour, "3 Nov" for a day. */
  const hourOf = (iso) => iso.slice(11, 16);
  const dayOf = (iso) => Number(iso.slice(8, 10)) + " " + MONTHS[Number(iso.slice(5, 7)) - 1];
  const when = (iso, granularity) => granularity === "hour" ? dayOf(iso) + " " + hourOf(iso) : dayOf(iso) + " " + iso.slice(0, 4);

  /* The smallest of 1, 2, 5, 10, 20, 50... at least `x`: the step of the y axis. */
  function niceStep(x) {
    if (x <= 1) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= x);
  }

  /* The buckets as an inline SVG bar chart, each bar stacked: verified (below) and refused (above). Each bucket is a
     <g class="bucket"> with its counts (data-verified, data-refused) and a tooltip; the chart's name is the heading
     `titleId`, its description the summary `descId`; a table beside it holds the same numbers. */
  function usageChart(u, titleId, descId) {
    const W = 720, H = 270, L = 64, R = 12, T = 36, B = 56, pw = W - L - R, ph = H - T - B;
    const n = u.buckets.length, band = pw / n, bw = Math.max(1, band * 0.7);
    const max = Math.max(0, ...u.buckets.map((b) => b.verified + refusedOf(b.refused)));
    const step = niceStep(max / 4), top = Math.max(step, Math.ceil(max / step) * step);
    const y = (v) => T + ph - (v / top) * ph;
    const parts = [];
    for (let v = 0; v <= top; v += step)
      parts.push(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        svg("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end", text: String(v) }));
    const every = Math.ceil(n / 8);
    u.buckets.forEach((b, i) => {
      const refused = refusedOf(b.refused), x = L + i * band + (band - bw) / 2;
      const reasons = REASONS.filter(([r]) => b.refused[r]).map(([r, words]) => b.refused[r] + " " + words);
      const g = svg("g", { class: "bucket", "data-start": b.start, "data-verified": b.verified, "data-refused": refused },
        svg("title", { text: when(b.start, u.granularity) + " UTC: " + b.verified + " verified, " + refused + " refused"
          + (reasons.length ? " (" + reasons.join(", ") + ")" : "") }),
        /* the whole column, invisible, so that the tooltip shows over an empty bucket too */
        svg("rect", { class: "hit", x: L + i * band, y: T, width: band, height: ph }));
      if (b.verified)
        g.append(svg("rect", { class: "verified", x, y: y(b.verified), width: bw, height: y(0) - y(b.verified), "data-count": b.verified }));
      if (refused)
        g.append(svg("rect", { class: "refused", x, y: y(b.verified + refused), width: bw, height: y(b.verified) - y(b.verified + refused),
          "data-count": refused }));
      parts.push(g);
      if (i % every === 0)
        parts.push(svg("text", { class: "tick", x: L + (i + 0.5) * band, y: T + ph + 6, "text-anchor": "middle", "dominant-baseline": "hanging",
          text: u.granularity === "hour" ? hourOf(b.start) : dayOf(b.start) }));
    });
    parts.push(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }),
      svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: y(0) }),
      svg("text", { class: "axis-title", x: L + pw / 2, y: H - 8, "text-anchor": "middle",
        text: u.granularity === "hour" ? "Hour starting (UTC)" : "Day (UTC)" }),
      svg("text", { class: "axis-title", transform: "translate(18 " + (T + ph / 2) + ") rotate(-90)", "text-anchor": "middle",
        text: "Requests" }),
      svg("rect", { class: "swatch verified", x: L, y: 10, width: 12, height: 12 }),
      svg("text", { class: "legend", x: L + 18, y: 21, text: "verified" }),
      svg("rect", { class: "swatch refused", x: L + 100, y: 10, width: 12, height: 12 }),
      svg("text", { class: "legend", x: L + 118, y: 21, text: "refused" }));
    return svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": titleId,
      "aria-describedby": descId }, ...parts);
  }

  /* Counts as cells: verified, refused, then each reason. */
  const countCells = (verified, refused) => [el("td", { text: String(verified) }), el("td", { text: String(refusedOf(refused)) }),
    ...REASONS.map(([r]) => el("td", { text: String(refused[r]) }))];
  const countHeaders = ["Verified", "Refused", ...REASONS.map(([, words]) => "Refused: " + words)];

  /* A key's usage (`k`), or the account's (`k` null): by hour over the last 24 hours or by day over the last 30 days,
     as a chart, a summary by reason and a table; the account's also per key. */
  async function showUsage(k, granularity) {
    const path = k ? "/v1/account/api-keys/" + k.id + "/usage" : "/v1/account/usage";
    const [u, list] = await Promise.all([api("GET", path + "?granularity=" + granularity),
      k ? null : api("GET", "/v1/account/api-keys/")]);
    const span = granularity === "hour" ? "the last 24 hours" : "the last 30 days";
    const t = u.total, refused = refusedOf(t.refused);
    const summary = "In " + span + ": " + (t.verified + refused) + " requests, " + t.verified + " verified and " + refused
      + " refused (" + REASONS.map(([r, words]) => words + ": " + t.refused[r]).join(", ") + ").";
    const choice = (g, text) => el("button", { type: "button", "aria-pressed": String(g === granularity), text,
      onclick: () => act(() => showUsage(k, g)) });
    const buckets = table("Usage by " + granularity, ["Start (UTC)", ...countHeaders], u.buckets.map((b) =>
      el("tr", {}, el("td", { text: when(b.start, granularity) }), ...countCells(b.verified, b.refused))));
    let perKey = "";
    if (!k) {
      const names = new Map(list.api_keys.map((x) => [x.id, x]));
      perKey = [el("h3", { text: "By key" }), u.keys.length === 0 ? el("p", { text: "No key was used in " + span + "." })
        : table("Usage by key", ["Key", ...countHeaders], u.keys.map((c) => {
          const x = names.get(c.key_id);
          return el("tr", { "data-key-id": String(c.key_id) },
            el("td", {}, x ? el("button", { type: "button", class: "link", "aria-label": "Usage of " + x.name, text: x.name,
              onclick: () => act(() => showUsage(x, granularity)) }) : "#" + c.key_id + " (deleted)"),
            ...countCells(c.verified, c.refused));
        }))];
    }
    $("view").replaceChildren(
      el("h2", { text: k ? "Usage of " + k.name : "Account usage" }),
      el("p", { text: (k ? "Requests authenticated with " + k.name + " (" + k.key_prefix + "…)"
        : sandbox ? "Requests authenticated with the account's sandbox keys" : "Requests authenticated with the account's keys")
        + ", counted within a second or two. Unknown keys are not counted." }),
      el("div", { class: "toolbar" }, el("button", { type: "button", onclick: () => act(showKeys), text: "Back to keys" }),
        choice("hour", "Last 24 hours"), choice("day", "Last 30 days")),
      el("h3", { id: "chart-title", text: "Requests per " + granularity + ", " + (granularity === "hour"
        ? when(u.from, "hour") + " to " + when(u.to, "hour") + " UTC"
        : when(u.buckets[0].start, "day") + " to " + when(u.buckets[u.buckets.length - 1].start, "day") + " (UTC)") }),
      el("p", { id: "usage-summary", text: summary }),
      el("div", { class: "chart" }, usageChart(u, "chart-title", "usage-summary")),
      el("details", {}, el("summary", { text: "The same numbers as a table" }), buckets),
      ...(perKey || []));
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
