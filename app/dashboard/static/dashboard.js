// The dashboard's script: asks for the admin key once (kept in this tab's sessionStorage, never in a cookie),
// sends it as a bearer header to fetch the page's figures, swaps them in, and does so again every few seconds
// while the tab is visible. The gateway renders every figure; nothing here computes one.
"use strict";
(() => {
  const STORE = "acedata-proxy.admin-key";
  const REFRESH_MS = 5000;
  const form = document.getElementById("login");
  const forget = document.getElementById("forget");
  const status = document.getElementById("status");
  let timer = null;
  let loads = 0;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function askForKey(message) {
    clearTimeout(timer);
    form.hidden = false;
    forget.hidden = true;
    status.textContent = message;
    document.body.dataset.state = "key";
    form.elements.key.focus();
  }

  async function refused(response) {
    sessionStorage.removeItem(STORE);
    const body = await response.json().catch(() => null);
    askForKey(body && body.error ? body.error.message : "That key was refused.");
  }

  function show(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("data");
    const main = document.getElementById("data");
    const open = [...main.querySelectorAll("section details[open]")].map((d) => d.closest("section").id);
    main.replaceWith(document.adoptNode(fresh));
    for (const id of open) {
      const details = document.querySelector(`#${id} details`);
      if (details) details.open = true;
    }
    form.hidden = true;
    forget.hidden = false;
    loads += 1;
    document.body.dataset.loads = String(loads);
    document.body.dataset.state = "loaded";
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async function refresh() {
    const key = sessionStorage.getItem(STORE);
    if (!key) return askForKey("");
    if (document.visibilityState === "hidden") return schedule();
    let response;
    try {
      response = await fetch("/admin/", {
        headers: { Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "omit",
      });
    } catch (error) {
      status.textContent = "gateway unreachable, retrying";
      return schedule();
    }
    if (response.status === 401 || response.status === 403) return refused(response);
    if (response.ok) show(await response.text());
    else status.textContent = `HTTP ${response.status}, retrying`;
    schedule();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORE, form.elements.key.value.trim());
    form.elements.key.value = "";
    refresh();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    window.location.reload();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  refresh();
})();
