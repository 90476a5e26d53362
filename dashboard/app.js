/*
 * apikeyd dashboard. The credential (an API key or an admin token) lives in
 * this module's memory only: never in localStorage, sessionStorage or a
 * cookie (see SECURITY.md). Reloading the page signs out.
 */
"use strict";
(() => {
  let credential = null;
  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + credential };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (!r.ok) throw new Error(data && data.error ? data.error.message : r.statusText);
    return data;
  }

  $("signin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    credential = $("credential").value.trim();
    $("credential").value = "";
    try {
      await api("GET", "/v1/account/api-keys/");
      $("signin-error").hidden = true;
    } catch (e) {
      credential = null;
      $("signin-error").textContent = e.message;
      $("signin-error").hidden = false;
    }
  });
})();
