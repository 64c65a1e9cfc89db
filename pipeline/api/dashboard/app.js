// Velourcity Webhooks developer dashboard. Plain JavaScript, no build step, no dependencies.
//
// Rules kept throughout: every piece of data reaches the page through textContent, value or
// setAttribute (never innerHTML), the API key lives in sessionStorage only (never a URL), and
// an API error is shown next to the form or button that caused it. A portal link's token comes
// in the URL's fragment (#portal=vpl_...): it is moved to sessionStorage and out of the address
// bar before anything else runs.
"use strict";

(() => {
  const EVENT_TYPES = [
    "order.created", "order.driver_assigned", "order.picked_up",
    "order.delivered", "order.cancelled", "payment.completed",
  ];
  const KEY_STORAGE = "velourcity.apiKey";
  const PORTAL_FRAGMENT = /^#portal=(vpl_[A-Za-z0-9_-]+)$/;
  const LOG_REFRESH_MS = 2000;
  const CHART_REFRESH_MS = 15000;
  const OUTCOMES = [ // chart series, bottom to top
    { key: "delivered", label: "delivered", color: "#1f9d55" },
    { key: "retry", label: "retry", color: "#d98e04" },
    { key: "dead_lettered", label: "dead-lettered", color: "#d64545" },
    { key: "other", label: "endpoint disabled / deleted", color: "#8a94a6" },
  ];

  const $ = (selector, root = document) => root.querySelector(selector);
  const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

  // DOM helpers: build elements from data without ever parsing it as markup. -------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function show(node, text) {
    if (!node) return;
    if (text !== undefined) node.textContent = String(text);
    node.hidden = false;
  }
  function hide(node) {
    if (node) node.hidden = true;
  }

  // State -------------------------------------------------------------------------------

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE),
    endpoints: [],
    selected: null, // endpoint id
    rows: new Map(), // delivery id -> {row, detailRow, cells}
    expanded: new Set(),
    logBusy: false,
    chartBusy: false,
    timers: [],
    catalog: [], // GET /v1/event-types
  };

  // The API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.key) headers.Authorization = `Bearer ${state.key}`;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "Could not reach the API. Is it running?");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      const message = error.message || `${response.status} ${response.statusText || "error"}`;
      const failure = new ApiError(response.status, error.code || "http_error", message, error.field);
      if (response.status === 401 && path !== "/v1/endpoints?limit=1") {
        signOut(isPortalToken(state.key)
          ? "This portal link has expired or was revoked: ask for a new one."
          : "Your API key was refused (wrong or revoked). Sign in again.");
      }
      throw failure;
    }
    return data;
  }

  const enc = encodeURIComponent;

  // Errors shown next to the form that caused them -----------------------------------------

  function clearFormError(form, errorNode) {
    hide(errorNode);
    if (form) {
      for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    }
  }

  function showFormError(form, errorNode, err) {
    const field = err && err.field ? String(err.field).split(".")[0] : null;
    const message = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
    show(errorNode, field ? `${message}` : message);
    if (errorNode) {
      errorNode.setAttribute("data-error-code", err && err.code ? err.code : "error");
      if (field) errorNode.setAttribute("data-error-field", field);
      else errorNode.removeAttribute("data-error-field");
    }
    if (form && field) {
      const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    }
  }

  // Formatting ----------------------------------------------------------------------------

  function fmtTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(undefined, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function fmtNext(iso) {
    if (!iso) return "—";
    const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    if (Number.isNaN(seconds)) return String(iso);
    if (seconds <= 0) return "due now";
    if (seconds < 120) return `in ${seconds}s`;
    if (seconds < 7200) return `in ${Math.round(seconds / 60)} min`;
    return fmtTime(iso);
  }

  function typesText(types) {
    return types && types.length ? types.join(", ") : "every event type";
  }

  // Sign in / out -------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorNode = byTestId("sign-in-error");
    clearFormError(form, errorNode);
    const key = form.elements.api_key.value.trim();
    if (!key) return;
    state.key = key;
    try {
      await api("GET", "/v1/endpoints?limit=1");
    } catch (err) {
      state.key = null;
      showFormError(form, errorNode, err);
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    form.reset();
    enterApp();
  }

  const isPortalToken = (key) => Boolean(key) && key.startsWith("vpl_");

  function takePortalToken() {
    const match = PORTAL_FRAGMENT.exec(location.hash);
    if (!match) return;
    state.key = match[1];
    sessionStorage.setItem(KEY_STORAGE, state.key);
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function showSession() {
    const label = $("#signed-in-as");
    const banner = $("#portal-banner");
    let me;
    try {
      me = await api("GET", "/v1/me");
    } catch (err) {
      return; // a refused key signs out (api() does it); anything else leaves the label as is
    }
    document.body.dataset.scope = me.scope;
    if (me.via !== "portal_link") {
      label.textContent = `Signed in · ${me.account_name} · key ${state.key.slice(0, 10)}…`;
      hide(banner);
      return;
    }
    const until = new Date(me.expires_at).toLocaleString();
    const access = me.scope === "read" ? "read-only" : "full access";
    label.textContent = `Signed in · ${me.account_name} · portal link (${access})`;
    show(banner, `You are signed in to ${me.account_name} through a portal link (${access}) `
      + `until ${until}.` + (me.scope === "read" ? " Nothing can be changed from here." : ""));
  }

  function signOut(message) {
    state.key = null;
    delete document.body.dataset.scope;
    hide($("#portal-banner"));
    sessionStorage.removeItem(KEY_STORAGE);
    stopTimers();
    state.selected = null;
    state.endpoints = [];
    resetLog();
    hide($("#app-view"));
    hide($("#session"));
    show($("#sign-in-view"));
    const errorNode = byTestId("sign-in-error");
    if (message) show(errorNode, message);
    else hide(errorNode);
    $("#api-key").focus();
  }

  function enterApp() {
    hide($("#sign-in-view"));
    show($("#app-view"));
    show($("#session"));
    $("#signed-in-as").textContent = isPortalToken(state.key)
      ? "Signed in · portal link" : `Signed in · key ${state.key.slice(0, 10)}…`;
    showSession();
    startTimers();
    loadCatalog();
    loadEndpoints().then(() => {
      const wanted = location.hash.replace(/^#/, "");
      if (wanted && state.endpoints.some((e) => e.id === wanted)) selectEndpoint(wanted);
    });
  }

  // Endpoints -----------------------------------------------------------------------------

  async function loadEndpoints() {
    const errorNode = byTestId("endpoint-list-error");
    const all = [];
    let cursor = null;
    try {
      do {
        const query = cursor ? `?limit=100&cursor=${enc(cursor)}` : "?limit=100";
        const page = await api("GET", `/v1/endpoints${query}`);
        all.push(...page.data);
        cursor = page.next_cursor;
      } while (cursor);
    } catch (err) {
      showFormError(null, errorNode, err);
      return;
    }
    hide(errorNode);
    state.endpoints = all;
    renderEndpointList();
    if (state.selected) {
      const current = all.find((e) => e.id === state.selected);
      if (current) renderDetail(current);
      else selectEndpoint(null);
    }
  }

  function renderEndpointList() {
    const list = $("#endpoint-list");
    list.replaceChildren(
      ...state.endpoints.map((endpoint) =>
        el("li", {},
          el("button", {
            type: "button",
            "data-testid": "endpoint-item",
            "data-endpoint-id": endpoint.id,
            "aria-current": endpoint.id === state.selected ? "true" : "false",
            onclick: () => selectEndpoint(endpoint.id),
          },
          el("span", { class: "url", text: endpoint.url }),
          el("span", { class: "meta" },
            el("span", {
              class: `badge ${endpoint.enabled ? "enabled" : "disabled"}`,
              text: endpoint.enabled ? "enabled" : "disabled",
            }),
            " ",
            endpoint.description || typesText(endpoint.event_types))))));
    $("#no-endpoints").hidden = state.endpoints.length > 0;
  }

  function selectEndpoint(id) {
    if (state.selected !== id) {
      resetLog();
      hide(byTestId("new-secret-box"));
    }
    state.selected = id;
    if (id) history.replaceState(null, "", `#${enc(id)}`);
    else history.replaceState(null, "", location.pathname);
    renderEndpointList();
    const endpoint = state.endpoints.find((e) => e.id === id);
    $("#pick-endpoint").hidden = Boolean(endpoint);
    $("#endpoint-detail").hidden = !endpoint;
    if (!endpoint) return;
    // A fresh view of this endpoint's tools.
    for (const testId of ["endpoint-action-error", "secret-error", "rotate-result", "recover-result",
      "recover-error", "test-result", "test-error", "log-error", "chart-error"]) {
      hide(byTestId(testId));
    }
    const secret = $("#secret-value");
    secret.value = "";
    secret.hidden = true;
    $("#reveal-secret").textContent = "Reveal";
    hide($("#edit-form"));
    renderDetail(endpoint);
    refreshLog();
    refreshChart();
  }

  function renderDetail(endpoint) {
    $("#detail-url").textContent = endpoint.url;
    $("#detail-id").textContent = endpoint.id;
    $("#detail-state").textContent = endpoint.enabled
      ? "enabled"
      : `disabled${endpoint.disabled_reason ? ` (${endpoint.disabled_reason})` : ""}`;
    $("#detail-state").setAttribute("data-enabled", String(endpoint.enabled));
    $("#detail-types").textContent = typesText(endpoint.event_types);
    $("#detail-description").textContent = endpoint.description || "";
    const headers = $("#detail-headers");
    const shown = Object.entries(endpoint.headers || {}).map(([name, value]) => `${name}: ${value}`);
    if (shown.length) show(headers, `headers: ${shown.join(", ")}`);
    else hide(headers);
    const filter = $("#detail-filter");
    if (endpoint.filter) show(filter, `filter: ${endpoint.filter}`);
    else hide(filter);
    const toggle = $("#toggle-enabled");
    toggle.textContent = endpoint.enabled ? "Disable" : "Enable";
    toggle.setAttribute("data-action", endpoint.enabled ? "disable" : "enable");
  }

  function replaceEndpoint(updated) {
    state.endpoints = state.endpoints.map((e) => (e.id === updated.id ? updated : e));
    renderEndpointList();
    if (state.selected === updated.id) renderDetail(updated);
  }

  function typeBoxes(fieldset, prefix) {
    for (const type of EVENT_TYPES) {
      fieldset.append(
        el("label", {},
          el("input", { type: "checkbox", name: "event_types", value: type,
            "data-testid": `${prefix}-${type}` }),
          type));
    }
  }

  function checkedTypes(form) {
    const types = [...form.querySelectorAll('input[name="event_types"]:checked')].map((i) => i.value);
    return types.length ? types : null;
  }

  // "Name: value" lines → {Name: value}; a line without a colon is sent as a name with no
  // value, so the API refuses it naming the field.
  function parseHeaders(text) {
    const headers = {};
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const colon = line.indexOf(":");
      if (colon < 0) headers[line.trim()] = "";
      else headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    return headers;
  }

  async function createEndpoint(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorNode = byTestId("create-endpoint-error");
    clearFormError(form, errorNode);
    hide(byTestId("new-secret-box"));
    const body = { url: form.elements.url.value.trim(), event_types: checkedTypes(form) };
    const description = form.elements.description.value.trim();
    if (description) body.description = description;
    const filter = form.elements.filter.value.trim();
    if (filter) body.filter = filter;
    const headers = parseHeaders(form.elements.headers.value);
    if (Object.keys(headers).length) body.headers = headers;
    const button = byTestId("create-endpoint");
    button.disabled = true;
    try {
      const created = await api("POST", "/v1/endpoints", body);
      const { secret, ...endpoint } = created;
      form.reset();
      state.endpoints.push(endpoint);
      selectEndpoint(endpoint.id);
      byTestId("new-secret").value = secret; // shown once, here; not kept anywhere
      show(byTestId("new-secret-box"));
    } catch (err) {
      showFormError(form, errorNode, err);
    } finally {
      button.disabled = false;
    }
  }

  function startEdit() {
    const endpoint = state.endpoints.find((e) => e.id === state.selected);
    if (!endpoint) return;
    const form = $("#edit-form");
    clearFormError(form, byTestId("edit-endpoint-error"));
    form.elements.url.value = endpoint.url;
    form.elements.description.value = endpoint.description || "";
    form.elements.filter.value = endpoint.filter || "";
    form.elements.headers.value = ""; // values are not shown here: masked, see the detail
    form.elements.clear_headers.checked = false;
    const types = new Set(endpoint.event_types || []);
    for (const box of form.querySelectorAll('input[name="event_types"]')) box.checked = types.has(box.value);
    form.hidden = false;
    form.elements.url.focus();
  }

  async function saveEdit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorNode = byTestId("edit-endpoint-error");
    clearFormError(form, errorNode);
    const body = {
      url: form.elements.url.value.trim(),
      event_types: checkedTypes(form),
      description: form.elements.description.value.trim(),
      filter: form.elements.filter.value.trim() || null,
    };
    const headers = parseHeaders(form.elements.headers.value);
    if (form.elements.clear_headers.checked) body.headers = null;
    else if (Object.keys(headers).length) body.headers = headers;
    try {
      replaceEndpoint(await api("PATCH", `/v1/endpoints/${enc(state.selected)}`, body));
      form.hidden = true;
    } catch (err) {
      showFormError(form, errorNode, err);
    }
  }

  async function toggleEnabled(event) {
    const button = event.currentTarget;
    const errorNode = byTestId("endpoint-action-error");
    hide(errorNode);
    const action = button.getAttribute("data-action") === "enable" ? "enable" : "disable";
    button.disabled = true;
    try {
      replaceEndpoint(await api("POST", `/v1/endpoints/${enc(state.selected)}/${action}`));
    } catch (err) {
      showFormError(null, errorNode, err);
    } finally {
      button.disabled = false;
    }
  }

  async function revealSecret() {
    const input = $("#secret-value");
    const button = $("#reveal-secret");
    const errorNode = byTestId("secret-error");
    hide(errorNode);
    if (!input.hidden) {
      input.value = "";
      input.hidden = true;
      button.textContent = "Reveal";
      return;
    }
    try {
      const data = await api("GET", `/v1/endpoints/${enc(state.selected)}/secret`);
      input.value = data.secret;
      input.hidden = false;
      button.textContent = "Hide";
    } catch (err) {
      showFormError(null, errorNode, err);
    }
  }

  async function rotateSecret(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorNode = byTestId("secret-error");
    const result = byTestId("rotate-result");
    clearFormError(form, errorNode);
    hide(result);
    const body = {};
    const grace = form.elements.grace_seconds.value.trim();
    if (grace !== "") body.grace_seconds = Number(grace);
    try {
      const data = await api("POST", `/v1/endpoints/${enc(state.selected)}/rotate-secret`, body);
      const input = $("#secret-value");
      input.value = data.secret;
      input.hidden = false;
      $("#reveal-secret").textContent = "Hide";
      const until = data.previous_secret_expires_at;
      show(result, until
        ? `New secret in use. The previous one keeps signing until ${fmtTime(until)}.`
        : "New secret in use. The previous one no longer signs.");
      form.reset();
    } catch (err) {
      showFormError(form, errorNode, err);
    }
  }

  // Delivery log --------------------------------------------------------------------------

  function resetLog() {
    state.rows = new Map();
    state.expanded = new Set();
    $("#log-body").replaceChildren();
    $("#log-empty").hidden = true;
    $("#log-updated").textContent = "";
    $("#chart").replaceChildren();
  }

  function logQuery() {
    const params = new URLSearchParams({ endpoint_id: state.selected, limit: "50" });
    const status = $("#log-status-filter").value;
    const type = $("#log-type-filter").value;
    if (status) params.set("status", status);
    if (type) params.set("event_type", type);
    return params.toString();
  }

  async function refreshLog() {
    if (!state.selected || !state.key || state.logBusy) return;
    const endpointId = state.selected;
    const query = logQuery();
    state.logBusy = true;
    const errorNode = byTestId("log-error");
    try {
      const page = await api("GET", `/v1/deliveries?${query}`);
      if (endpointId !== state.selected || query !== logQuery()) return; // changed meanwhile
      hide(errorNode);
      renderLog(page.data);
      $("#log-updated").textContent = `· updated ${new Date().toLocaleTimeString()}`;
      await Promise.all([...state.expanded].map((id) => loadAttempts(id)));
    } catch (err) {
      if (endpointId === state.selected) showFormError(null, errorNode, err);
    } finally {
      state.logBusy = false;
    }
  }

  function newRow(delivery) {
    const cells = {
      type: el("td", { "data-testid": "delivery-event-type" }),
      eventId: el("td", { class: "event-id", "data-testid": "delivery-event-id" }),
      time: el("td", { "data-testid": "delivery-time" }),
      status: el("span", { class: "badge", "data-testid": "delivery-status" }),
      attempts: el("td", { "data-testid": "delivery-attempts" }),
      last: el("td", { "data-testid": "delivery-last-status" }),
      next: el("td", { "data-testid": "delivery-next-attempt" }),
      message: el("span", { class: "small", "data-testid": "retry-result" }),
    };
    const retry = el("button", {
      type: "button", class: "small", "data-testid": "retry-delivery", "data-writes": true,
      onclick: (event) => { event.stopPropagation(); retryDelivery(delivery.id, retry, cells.message); },
    }, "Retry");
    const row = el("tr", {
      class: "delivery", "data-testid": "delivery-row", "data-delivery-id": delivery.id,
      tabindex: "0", "aria-expanded": "false",
      onclick: () => toggleAttempts(delivery.id),
      onkeydown: (event) => {
        if (event.target === row && (event.key === "Enter" || event.key === " ")) {
          event.preventDefault();
          toggleAttempts(delivery.id);
        }
      },
    }, cells.type, cells.eventId, cells.time, el("td", {}, cells.status), cells.attempts, cells.last,
    cells.next, el("td", {}, retry, " ", cells.message));
    const detailRow = el("tr", { class: "attempts-row", "data-testid": "delivery-attempts-row",
      "data-delivery-id": delivery.id, hidden: true },
    el("td", { colspan: "8" }));
    return { row, detailRow, cells };
  }

  function renderLog(deliveries) {
    const body = $("#log-body");
    const seen = new Set();
    let cursor = body.firstChild;
    for (const delivery of deliveries) {
      seen.add(delivery.id);
      let entry = state.rows.get(delivery.id);
      if (!entry) {
        entry = newRow(delivery);
        state.rows.set(delivery.id, entry);
      }
      const { row, detailRow, cells } = entry;
      cells.type.textContent = delivery.event_type;
      cells.eventId.textContent = delivery.event_id;
      cells.time.textContent = fmtTime(delivery.created_at);
      cells.status.textContent = delivery.status;
      cells.status.className = `badge ${delivery.status}`;
      cells.attempts.textContent = String(delivery.attempts);
      cells.last.textContent = delivery.last_status === null || delivery.last_status === undefined
        ? "—" : String(delivery.last_status);
      cells.next.textContent = fmtNext(delivery.next_attempt_at);
      row.setAttribute("data-status", delivery.status);
      // Keep the order of the page without moving rows that are already in place.
      if (cursor !== row) body.insertBefore(row, cursor);
      if (row.nextSibling !== detailRow) body.insertBefore(detailRow, row.nextSibling);
      cursor = detailRow.nextSibling;
    }
    for (const [id, entry] of state.rows) {
      if (!seen.has(id)) {
        entry.row.remove();
        entry.detailRow.remove();
        state.rows.delete(id);
        state.expanded.delete(id);
      }
    }
    $("#log-empty").hidden = deliveries.length > 0;
  }

  function toggleAttempts(id) {
    const entry = state.rows.get(id);
    if (!entry) return;
    if (state.expanded.has(id)) {
      state.expanded.delete(id);
      entry.detailRow.hidden = true;
      entry.row.setAttribute("aria-expanded", "false");
      return;
    }
    state.expanded.add(id);
    entry.detailRow.hidden = false;
    entry.row.setAttribute("aria-expanded", "true");
    if (!entry.detailRow.firstChild.firstChild) {
      entry.detailRow.firstChild.replaceChildren(el("span", { class: "muted", text: "Loading…" }));
    }
    loadAttempts(id);
  }

  async function loadAttempts(id) {
    const entry = state.rows.get(id);
    if (!entry) return;
    const cell = entry.detailRow.firstChild;
    let detail;
    try {
      detail = await api("GET", `/v1/deliveries/${enc(id)}`);
    } catch (err) {
      cell.replaceChildren(el("p", { class: "error", "data-testid": "attempts-error", text: err.message }));
      return;
    }
    const attempts = detail.attempts_log || [];
    const rows = attempts.map((a) =>
      el("tr", { "data-testid": "attempt-row", "data-attempt": a.attempt, "data-outcome": a.outcome },
        el("td", { text: a.attempt }),
        el("td", { text: fmtTime(a.at) }),
        el("td", { "data-testid": "attempt-status",
          text: a.status === null || a.status === undefined ? "no response" : a.status }),
        el("td", { "data-testid": "attempt-outcome", text: a.outcome }),
        el("td", { "data-testid": "attempt-latency",
          text: typeof a.latency_ms === "number" ? `${Math.round(a.latency_ms)} ms` : "—" }),
        el("td", { class: "excerpt", "data-testid": "attempt-response",
          text: [a.error, a.response_excerpt].filter(Boolean).join(" · ") || "—" }),
        el("td", { text: a.next_attempt_at ? fmtTime(a.next_attempt_at) : "—" })));
    const table = el("table", { class: "attempts", "data-testid": "attempts" },
      el("thead", {}, el("tr", {},
        ...["#", "At", "HTTP status", "Outcome", "Latency", "Response / error", "Next attempt"]
          .map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows));
    cell.replaceChildren(attempts.length ? table
      : el("p", { class: "muted", "data-testid": "no-attempts", text: "No attempt yet." }));
  }

  async function retryDelivery(id, button, message) {
    button.disabled = true;
    message.className = "small muted";
    message.textContent = "";
    try {
      const data = await api("POST", `/v1/deliveries/${enc(id)}/retry`);
      message.textContent = data && data.status ? data.status : "queued";
      refreshLog();
    } catch (err) {
      message.className = "small error";
      message.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  async function recover(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const result = byTestId("recover-result");
    const errorNode = byTestId("recover-error");
    clearFormError(form, errorNode);
    hide(result);
    try {
      const data = await api("POST", `/v1/endpoints/${enc(state.selected)}/recover`,
        { since: form.elements.since.value.trim() });
      show(result, `${data.queued} failed ${data.queued === 1 ? "delivery" : "deliveries"} queued again`);
      refreshLog();
    } catch (err) {
      showFormError(form, errorNode, err);
    }
  }

  // Event catalog: GET /v1/event-types; its domain types are the ones a test event can be --
  // sent as, with the example shown.

  function typeName(field) {
    if (field.anyOf) {
      const names = field.anyOf.map(typeName);
      const shown = names.filter((n) => n !== "null").join(" or ");
      return names.includes("null") ? `${shown} or null` : shown;
    }
    if (field.format === "date-time") return "date-time";
    if (field.type === "array") return `array of ${typeName(field.items || {})}`;
    return field.type || "any";
  }

  function showCatalogEntry(type) {
    const entry = state.catalog.find((e) => e.type === type);
    if (!entry) return;
    const schema = entry.versions[entry.versions.length - 1].schema;
    $("#catalog-description").textContent = entry.description;
    $("#catalog-version").textContent = `version ${entry.current_version}` +
      (entry.versions.length > 1 ? ` (earlier: ${entry.versions.slice(0, -1).map((v) => v.version).join(", ")})` : "");
    const rows = $("#catalog-fields");
    rows.replaceChildren();
    const data = schema.properties.data || {};
    for (const [name, field] of Object.entries(data.properties || {})) {
      rows.append(el("tr", { "data-testid": "catalog-field" },
        el("td", { class: "mono", text: name }),
        el("td", { text: typeName(field), title: field.description || "" })));
    }
    $("#catalog-example").textContent = JSON.stringify(entry.example, null, 2);
  }

  async function loadCatalog() {
    const errorNode = byTestId("catalog-error");
    hide(errorNode);
    try {
      state.catalog = (await api("GET", "/v1/event-types")).data;
    } catch (err) {
      show(errorNode, err.message || String(err));
      return;
    }
    const pick = byTestId("catalog-type");
    const test = byTestId("test-event-type");
    pick.replaceChildren();
    test.replaceChildren();
    for (const entry of state.catalog) {
      pick.append(el("option", { value: entry.type, text: entry.type }));
      if (entry.kind === "domain") test.append(el("option", { value: entry.type, text: entry.type }));
    }
    showCatalogEntry(pick.value);
  }

  async function sendTest(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const result = byTestId("test-result");
    const errorNode = byTestId("test-error");
    clearFormError(form, errorNode);
    hide(result);
    try {
      const data = await api("POST", `/v1/endpoints/${enc(state.selected)}/test`,
        { event_type: form.elements.event_type.value });
      show(result, `Sent ${data.event_id}`);
      refreshLog();
    } catch (err) {
      showFormError(form, errorNode, err);
    }
  }

  // Chart: deliveries per minute by outcome, stacked bars in inline SVG ------------------

  function minuteCounts(minute) {
    // {"minute", "counts": {...}} or the counts beside "minute": both are read.
    const source = minute.counts && typeof minute.counts === "object" ? minute.counts : minute;
    const counts = { delivered: 0, retry: 0, dead_lettered: 0, other: 0 };
    for (const [key, value] of Object.entries(source)) {
      if (key === "minute" || typeof value !== "number") continue;
      if (key in counts && key !== "other") counts[key] += value;
      else counts.other += value;
    }
    return counts;
  }

  async function refreshChart() {
    if (!state.selected || !state.key || state.chartBusy) return;
    const endpointId = state.selected;
    const hours = Number($("#chart-hours").value) || 6;
    state.chartBusy = true;
    const errorNode = byTestId("chart-error");
    try {
      const data = await api("GET",
        `/v1/stats/deliveries?endpoint_id=${enc(endpointId)}&hours=${enc(hours)}`);
      if (endpointId !== state.selected) return;
      hide(errorNode);
      drawChart(data.minutes || [], hours);
    } catch (err) {
      if (endpointId === state.selected) showFormError(null, errorNode, err);
    } finally {
      state.chartBusy = false;
    }
  }

  function drawChart(minutes, hours) {
    const width = 900;
    const height = 180;
    const pad = { left: 34, right: 8, top: 8, bottom: 22 };
    const slots = Math.round(hours * 60);
    const end = Math.floor(Date.now() / 60000) * 60000;
    const start = end - (slots - 1) * 60000;
    const buckets = new Map();
    for (const minute of minutes) {
      const at = new Date(minute.minute).getTime();
      if (Number.isNaN(at)) continue;
      const slot = Math.floor(at / 60000) * 60000;
      const counts = minuteCounts(minute);
      const current = buckets.get(slot) || { delivered: 0, retry: 0, dead_lettered: 0, other: 0 };
      for (const key of Object.keys(current)) current[key] += counts[key];
      buckets.set(slot, current);
    }
    let max = 1;
    for (const counts of buckets.values()) {
      max = Math.max(max, OUTCOMES.reduce((sum, o) => sum + counts[o.key], 0));
    }
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const barW = plotW / slots;
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
      "aria-label": `Deliveries per minute, last ${hours} hours`, "data-testid": "chart-svg",
    });
    root.append(svg("line", { class: "axis", x1: pad.left, y1: pad.top + plotH,
      x2: width - pad.right, y2: pad.top + plotH }));
    root.append(svg("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: pad.top + plotH }));
    root.append(svg("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end" }, max));
    root.append(svg("text", { x: pad.left - 4, y: pad.top + plotH, "text-anchor": "end" }, 0));
    const ticks = hours <= 1 ? 4 : hours <= 6 ? 6 : 8;
    for (let i = 0; i <= ticks; i += 1) {
      const at = start + ((end - start) * i) / ticks;
      const x = pad.left + (plotW * i) / ticks;
      const label = new Date(at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      root.append(svg("text", { x, y: height - 6,
        "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, label));
    }
    for (const [slot, counts] of buckets) {
      if (slot < start || slot > end) continue;
      const x = pad.left + ((slot - start) / 60000) * barW;
      let y = pad.top + plotH;
      for (const outcome of OUTCOMES) {
        const value = counts[outcome.key];
        if (!value) continue;
        const h = (value / max) * plotH;
        y -= h;
        const rect = svg("rect", {
          x: x.toFixed(2), y: y.toFixed(2), width: Math.max(barW - 0.5, 1).toFixed(2), height: h.toFixed(2),
          fill: outcome.color, "data-testid": "chart-bar", "data-outcome": outcome.key, "data-count": value,
        });
        rect.append(svg("title", {}, `${new Date(slot).toLocaleTimeString()} · ${outcome.label}: ${value}`));
        root.append(rect);
      }
    }
    const legend = el("div", { class: "legend" },
      ...OUTCOMES.map((o) => {
        const swatch = el("i");
        swatch.style.background = o.color; // CSSOM, not a style attribute (the CSP refuses those)
        return el("span", {}, swatch, o.label);
      }));
    $("#chart").replaceChildren(root, legend);
  }

  // Timers --------------------------------------------------------------------------------

  function startTimers() {
    stopTimers();
    state.timers.push(setInterval(() => { if (!document.hidden) refreshLog(); }, LOG_REFRESH_MS));
    state.timers.push(setInterval(() => { if (!document.hidden) refreshChart(); }, CHART_REFRESH_MS));
  }

  function stopTimers() {
    for (const timer of state.timers) clearInterval(timer);
    state.timers = [];
  }

  // Wiring --------------------------------------------------------------------------------

  function init() {
    takePortalToken();
    window.addEventListener("hashchange", () => {
      // another portal link opened in this tab: sign in with it from a fresh page
      if (PORTAL_FRAGMENT.test(location.hash)) {
        takePortalToken();
        location.reload();
      }
    });
    typeBoxes($('[data-testid="endpoint-event-types"]'), "event-type");
    typeBoxes($('[data-testid="edit-event-types"]'), "edit-event-type");
    const typeFilter = $("#log-type-filter");
    for (const type of EVENT_TYPES) typeFilter.append(el("option", { value: type, text: type }));
    $("#catalog-type").addEventListener("change", (event) => showCatalogEntry(event.currentTarget.value));
    $("#sign-in-form").addEventListener("submit", signIn);
    $("#sign-out").addEventListener("click", () => signOut());
    $("#create-form").addEventListener("submit", createEndpoint);
    $("#edit-endpoint").addEventListener("click", startEdit);
    $("#cancel-edit").addEventListener("click", () => { $("#edit-form").hidden = true; });
    $("#edit-form").addEventListener("submit", saveEdit);
    $("#toggle-enabled").addEventListener("click", toggleEnabled);
    $("#reveal-secret").addEventListener("click", revealSecret);
    $("#rotate-form").addEventListener("submit", rotateSecret);
    $("#recover-form").addEventListener("submit", recover);
    $("#test-form").addEventListener("submit", sendTest);
    $("#chart-hours").addEventListener("change", refreshChart);
    for (const filter of ["#log-status-filter", "#log-type-filter"]) {
      $(filter).addEventListener("change", () => { resetRows(); refreshLog(); });
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshLog(); });
    if (state.key) enterApp();
    else signOut();
  }

  function resetRows() {
    state.rows = new Map();
    state.expanded = new Set();
    $("#log-body").replaceChildren();
  }

  init();
})();
