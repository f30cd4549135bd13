// roe console: plain JavaScript over roe's own API. Every call carries the
// API key the user typed (kept in sessionStorage) exactly as a client would.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  key: sessionStorage.getItem("roe-key") || "",
  experts: [],
  selected: "",
  routed: [],         // prompts routed from this console: placed on the map
  lastRoute: null,    // the last /v1/route request and answer
  mapData: null,
  view: { scale: 1, dx: 0, dy: 0 },
  highlight: "",      // expert whose instances the map rings
  jobs: [],
  job: "",            // job whose loss curve is drawn
  health: [],         // samples of /metrics
  baseID: "base",
  timers: {},
};

// ---- API -----------------------------------------------------------------

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (state.key) headers.Authorization = "Bearer " + state.key;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method: opts.method || (opts.body ? "POST" : "GET"), headers, body: opts.body });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { const b = await res.json(); if (b && b.error && b.error.message) msg = b.error.message; } catch (_) { /* not JSON */ }
    if (res.status === 401) signOut(msg);
    throw new APIError(res.status, msg);
  }
  if (opts.raw) return res;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

function showError(err) {
  if (err instanceof APIError && err.status === 401) return; // the login form says it
  const b = $("#banner");
  b.textContent = String(err.message || err);
  b.hidden = false;
  clearTimeout(state.timers.banner);
  state.timers.banner = setTimeout(() => { b.hidden = true; }, 8000);
}

// run calls f, reporting a failure in the banner instead of throwing.
function run(f) {
  return (...args) => Promise.resolve().then(() => f(...args)).catch(showError);
}

// ---- helpers -------------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function bytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

const fmt = (x, d = 3) => (x == null || Number.isNaN(x) ? "—" : Number(x).toFixed(d));
const day = (t) => (t ? new Date(t).toISOString().slice(0, 16).replace("T", " ") : "");
const taskOf = (m) => m.dataset || (m.name.includes("/") ? m.name.slice(0, m.name.indexOf("/")) : m.name);

// colorOf gives each name a stable hue.
function colorOf(name) {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.codePointAt(0), 16777619);
  return `hsl(${(h >>> 0) % 360} 65% 45%)`;
}

// ---- sign-in and tabs ----------------------------------------------------

function signOut(msg) {
  state.key = "";
  sessionStorage.removeItem("roe-key");
  $("#app").hidden = true;
  $("#tabs").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = msg || "";
  for (const t of Object.values(state.timers)) clearInterval(t);
}

async function start() {
  let failed = null; // the page still opens: a server without a library has no experts to list
  try {
    await loadExperts();
  } catch (err) {
    if (err instanceof APIError && err.status === 401) return; // login shown
    failed = err;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#tabs").hidden = false;
  $("#logout").hidden = !state.key;
  $("#login-error").textContent = "";
  api("/v1/models").then((m) => {
    const base = (m.data || []).find((x) => x.roe_kind === "base");
    if (base) state.baseID = base.id;
  }).catch(showError);
  state.timers.health = setInterval(run(sampleHealth), 2000);
  sampleHealth().catch(showError);
  showTab(location.hash.slice(1) || "library");
  if (failed) showError(failed);
}

function showTab(name) {
  if (!$("#" + name + ".tab")) name = "library";
  for (const b of $$("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of $$(".tab")) s.hidden = s.id !== name;
  if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
  if (name === "library") run(loadExperts)();
  if (name === "map") run(loadMap)();
  if (name === "jobs") run(loadJobs)();
  if (name === "health") drawHealth();
}

// ---- library -------------------------------------------------------------

async function loadExperts() {
  const r = await api("/v1/experts");
  state.experts = r.data || [];
  renderExperts();
}

function renderExperts() {
  const q = $("#search").value.trim().toLowerCase();
  const kind = $("#kind-filter").value;
  const rows = state.experts.filter((m) =>
    (!kind || m.kind === kind) &&
    (!q || [m.name, taskOf(m), m.description || "", m.template || "", m.prompt || ""].some((s) => s.toLowerCase().includes(q))));
  const tb = $("#experts tbody");
  tb.replaceChildren(...rows.map((m) => {
    const tr = el("tr", { "data-name": m.name, onclick: () => run(showExpert)(m.name) },
      el("td", { text: m.name }), el("td", { text: m.kind }), el("td", { text: taskOf(m) + (m.prompt ? " / " + m.prompt : "") }),
      el("td", { class: "num", text: m.rank || "—" }), el("td", { class: "num", text: bytes(m.adapter_bytes) }),
      el("td", { class: "num", text: m.routable ? m.num_instances : "0 (by name)" }),
      el("td", { class: "nowrap", text: m.embedder || "" }), el("td", { class: "nowrap", text: day(m.created) }),
      el("td", { class: "num", text: m.stats ? m.stats.selections : 0 }));
    if (m.name === state.selected) tr.classList.add("selected");
    return tr;
  }));
  $("#expert-count").textContent = `${rows.length} of ${state.experts.length} experts`;
}

async function showExpert(name) {
  state.selected = name;
  for (const tr of $$("#experts tbody tr")) tr.classList.toggle("selected", tr.dataset.name === name);
  const d = await api("/v1/experts/" + encodeURIComponent(name) + "?instances=10");
  const st = d.stats || {};
  const box = $("#expert-detail");
  box.replaceChildren(
    el("h2", { text: d.name }),
    el("p", {}, el("span", { class: "tag", text: d.kind }), el("span", { class: "tag", text: taskOf(d) }),
      d.routable ? el("span", { class: "tag", text: "routable" }) : el("span", { class: "tag", text: "by name only" })),
    d.description ? el("p", { text: d.description }) : null,
    el("table", {}, el("tbody", {},
      ...[["rank / alpha", `${d.rank || "—"} / ${d.alpha || "—"}`], ["adapter", `${bytes(d.adapter_bytes)} in ${d.num_tensors} tensors`],
        ["instances", `${d.num_instances}` + (d.sampled_from ? ` (sampled from ${d.sampled_from})` : "")],
        ["embedder", d.embedder || "—"], ["added", day(d.created)], ["id", d.id],
        ["selected", `${st.selections || 0} (${st.routed || 0} by routing, mean margin ${fmt(st.mean_margin)})`],
        ["last selected", st.last_selected ? day(st.last_selected) : "never"]]
        .map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))))),
    el("h3", { text: "Adapter configuration" }),
    el("pre", { id: "adapter-config", text: d.adapter_config ? JSON.stringify(d.adapter_config, null, 2) : "—" }),
    el("h3", { text: "Sample instances" }),
    el("ol", { class: "instances" }, ...(d.instances || []).map((i) =>
      el("li", { text: i.input + (i.target ? "  → " + i.target : "") }))),
    el("div", { class: "toolbar" },
      el("button", { id: "export-btn", onclick: run(() => exportExpert(d.name)) }, "Export (zip)"),
      el("button", { onclick: () => { state.highlight = d.name; showTab("map"); } }, "Show on map"),
      el("button", { id: "delete-btn", class: "danger", onclick: run(() => deleteExpert(d.name)) }, "Delete")));
  box.hidden = false;
}

async function exportExpert(name) {
  const res = await api("/v1/experts/" + encodeURIComponent(name) + "?download=zip", { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: name.replaceAll("/", "-") + ".zip" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function deleteExpert(name) {
  if (!confirm(`Delete the expert ${name}? It is removed from the library and from routing.`)) return;
  await api("/v1/experts/" + encodeURIComponent(name), { method: "DELETE" });
  $("#expert-detail").hidden = true;
  state.selected = "";
  state.mapData = null;
  await loadExperts();
}

// ---- map -----------------------------------------------------------------

async function loadMap() {
  state.mapData = await api("/v1/experts/map", { json: { queries: state.routed.slice(-32), max_points: 20000 } });
  const m = state.mapData;
  $("#map-info").textContent = `${m.instances.length} of ${m.total} instances, ${m.queries.length} routed prompts; ` +
    `axes hold ${(100 * m.variance[0]).toFixed(1)}% and ${(100 * m.variance[1]).toFixed(1)}% of the variance (${m.embedder})`;
  fitMap();
  drawMap();
}

function mapBounds() {
  const pts = state.mapData.instances.concat(state.mapData.queries);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const p of pts) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); }
  if (!pts.length) return { x0: -1, x1: 1, y0: -1, y1: 1 };
  if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  return { x0, x1, y0, y1 };
}

function fitMap() {
  const c = $("#map-canvas");
  const w = c.clientWidth || 800;
  c.width = w * devicePixelRatio;
  c.height = Math.round(w * 0.62) * devicePixelRatio;
  state.view = { scale: 1, dx: 0, dy: 0 };
}

// toScreen maps plane coordinates to canvas pixels.
function toScreen(p) {
  const c = $("#map-canvas"), b = mapBounds(), pad = 24 * devicePixelRatio;
  const sx = (c.width - 2 * pad) / (b.x1 - b.x0), sy = (c.height - 2 * pad) / (b.y1 - b.y0);
  const s = Math.min(sx, sy);
  const x = pad + (p.x - b.x0) * s + (c.width - 2 * pad - (b.x1 - b.x0) * s) / 2;
  const y = c.height - pad - (p.y - b.y0) * s - (c.height - 2 * pad - (b.y1 - b.y0) * s) / 2;
  const v = state.view;
  return [(x - c.width / 2) * v.scale + c.width / 2 + v.dx, (y - c.height / 2) * v.scale + c.height / 2 + v.dy];
}

function groupOf(name) {
  if ($("#map-color").value === "expert") return name;
  const m = state.experts.find((x) => x.name === name);
  return m ? taskOf(m) : name;
}

function drawMap() {
  const m = state.mapData;
  if (!m) return;
  const c = $("#map-canvas"), g = c.getContext("2d"), r = 3 * devicePixelRatio;
  g.clearRect(0, 0, c.width, c.height);
  const groups = new Map();
  for (const p of m.instances) {
    const k = groupOf(p.expert);
    groups.set(k, (groups.get(k) || 0) + 1);
    const [x, y] = toScreen(p);
    g.fillStyle = colorOf(k);
    g.globalAlpha = state.highlight && p.expert !== state.highlight ? 0.35 : 0.85;
    g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.fill();
    if (p.expert === state.highlight) {
      g.globalAlpha = 1; g.strokeStyle = "#000"; g.lineWidth = devicePixelRatio;
      g.beginPath(); g.arc(x, y, r + 2 * devicePixelRatio, 0, 2 * Math.PI); g.stroke();
    }
  }
  g.globalAlpha = 1;
  g.fillStyle = "#000";
  g.font = `${14 * devicePixelRatio}px sans-serif`;
  g.textAlign = "center"; g.textBaseline = "middle";
  for (const q of m.queries) { const [x, y] = toScreen(q); g.fillText("★", x, y); }
  $("#map-legend").replaceChildren(...[...groups.entries()].sort().map(([k, n]) =>
    el("li", {}, swatch(colorOf(k)), `${k} (${n})`)));
}

// swatch is a colour dot (styled through the CSSOM: the page's policy
// forbids inline style attributes).
function swatch(color) {
  const s = el("span");
  s.style.background = color;
  return s;
}

// nearest is the placed point under the pointer, if any.
function nearest(ev) {
  const m = state.mapData;
  if (!m) return null;
  const c = $("#map-canvas"), rect = c.getBoundingClientRect();
  const px = (ev.clientX - rect.left) * c.width / rect.width, py = (ev.clientY - rect.top) * c.height / rect.height;
  let best = null, bd = (8 * devicePixelRatio) ** 2;
  for (const p of m.queries.map((q) => Object.assign({ query: true }, q)).concat(m.instances)) {
    const [x, y] = toScreen(p), d = (x - px) ** 2 + (y - py) ** 2;
    if (d < bd) { bd = d; best = p; }
  }
  return best;
}

function mapEvents() {
  const c = $("#map-canvas"), tip = $("#map-tip");
  let drag = null;
  c.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const f = ev.deltaY < 0 ? 1.2 : 1 / 1.2, rect = c.getBoundingClientRect(), v = state.view;
    const px = (ev.clientX - rect.left) * c.width / rect.width - c.width / 2, py = (ev.clientY - rect.top) * c.height / rect.height - c.height / 2;
    v.dx = px - (px - v.dx) * f; v.dy = py - (py - v.dy) * f; v.scale *= f;
    drawMap();
  }, { passive: false });
  c.addEventListener("pointerdown", (ev) => { drag = { x: ev.clientX, y: ev.clientY }; c.setPointerCapture(ev.pointerId); });
  c.addEventListener("pointerup", () => { drag = null; });
  c.addEventListener("pointermove", (ev) => {
    if (drag) {
      const rect = c.getBoundingClientRect();
      state.view.dx += (ev.clientX - drag.x) * c.width / rect.width;
      state.view.dy += (ev.clientY - drag.y) * c.height / rect.height;
      drag = { x: ev.clientX, y: ev.clientY };
      drawMap();
      return;
    }
    const p = nearest(ev);
    if (!p) { tip.hidden = true; return; }
    const rect = c.getBoundingClientRect();
    tip.textContent = (p.query ? "routed prompt: " : p.expert + ": ") + p.text.slice(0, 400);
    tip.style.left = Math.min(ev.clientX - rect.left + 12, rect.width - 200) + "px";
    tip.style.top = (ev.clientY - rect.top + 12) + "px";
    tip.hidden = false;
  });
  c.addEventListener("pointerleave", () => { tip.hidden = true; });
  $("#map-reset").addEventListener("click", () => { state.highlight = ""; fitMap(); drawMap(); });
  $("#map-reload").addEventListener("click", run(loadMap));
  $("#map-color").addEventListener("change", drawMap);
  addEventListener("resize", () => { if (!$("#map").hidden && state.mapData) { fitMap(); drawMap(); } });
}

// ---- routing explorer ----------------------------------------------------

function routeRequest() {
  const extra = $("#extra").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const routing = { top_k: Number($("#topk").value) || 1 };
  if (extra.length) routing.queries = extra;
  if ($("#compose").checked) routing.compose = true;
  return { model: "auto", prompt: $("#prompt").value, routing };
}

async function doRoute(ev) {
  ev.preventDefault();
  const req = routeRequest();
  const r = await api("/v1/route", { json: req });
  state.lastRoute = { req, roe: r.roe };
  state.routed.push(req.prompt, ...(req.routing.queries || []));
  state.mapData = null;
  const roe = r.roe;
  const chosen = roe.experts.map((x) => x.name).join(" + ");
  const sum = $("#route-summary");
  sum.replaceChildren(
    roe.fallback
      ? el("span", { id: "route-chosen", "data-expert": "", text: `Falls back to the base model: ${roe.fallback_reason}` })
      : el("span", {}, "Chosen: ", el("b", { id: "route-chosen", "data-expert": chosen, text: chosen }),
        roe.merge ? ` (merged: ${roe.merge})` : "",
        roe.compression ? ` — compressed to rank ${roe.compression.rank}, relative error ${fmt(roe.compression.rel_error)}` : ""),
    el("br"),
    `mode ${roe.mode}; confidence ${fmt(roe.confidence)}; margin over the runner-up ${fmt(roe.margin)}; ` +
    (roe.background != null ? `likeness to general requests ${fmt(roe.background)}; ` : "") +
    `${roe.queries} ${roe.queries === 1 ? "query" : "queries"}; routed in ${fmt(roe.routing_ms, 2)} ms`);
  $("#candidates tbody").replaceChildren(...(roe.candidates || []).map((x) =>
    el("tr", { onclick: () => run(showExpertTab)(x.name) }, el("td", { text: x.name }), el("td", { class: "num", text: x.votes || 0 }),
      el("td", { class: "num", text: fmt(x.score) }), el("td", { class: "num", text: fmt(x.confidence) }))));
  $("#neighbors").replaceChildren(...(roe.neighbors || []).map((ns, i) =>
    el("div", {}, el("h4", { text: i === 0 ? "prompt" : "query " + (i + 1) }),
      el("ol", { class: "instances" }, ...ns.map((n) => el("li", {}, el("b", { text: n.expert }), ` ${fmt(n.score)} — ${n.text}`))))));
  $("#route-result").hidden = false;
  $("#run-btn").disabled = false;
}

async function showExpertTab(name) {
  showTab("library");
  await showExpert(name);
}

// stream runs one streamed completion, appending its text to out.
async function stream(body, out, title) {
  out.textContent = "";
  out.dataset.done = "";
  const status = $("#" + out.id + "-status");
  status.textContent = "streaming…";
  let finish = "", chunks = 0;
  const res = await api("/v1/completions", { json: Object.assign({ stream: true }, body), raw: true });
  const reader = res.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of ev.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message || "stream error");
        const ch = j.choices && j.choices[0];
        if (ch && ch.text) { out.textContent += ch.text; chunks++; }
        if (ch && ch.finish_reason) finish = ch.finish_reason;
        if (j.roe && title) title.textContent = "routed: " + (j.roe.fallback ? "base (fallback)" : j.roe.experts.map((x) => x.name).join(" + "));
      }
    }
  }
  status.textContent = `finish_reason ${finish || "—"}` + (out.textContent ? `, ${chunks} chunks` : ", no text (the model stopped at once)");
  out.dataset.done = "1";
}

async function doRun() {
  const last = state.lastRoute;
  if (!last) return;
  $("#compare").hidden = false;
  const common = { prompt: last.req.prompt, max_tokens: Number($("#max-tokens").value) || 48, temperature: 0 };
  $("#out-base-title").textContent = "base: " + state.baseID;
  $("#run-btn").disabled = true;
  try {
    await Promise.all([
      stream(Object.assign({ model: "auto", routing: last.req.routing }, common), $("#out-expert"), $("#out-expert-title")),
      stream(Object.assign({ model: state.baseID }, common), $("#out-base"), null),
    ]);
  } finally {
    $("#run-btn").disabled = false;
  }
}

// ---- add an expert -------------------------------------------------------

async function doAdd(ev) {
  ev.preventDefault();
  const form = $("#add-form"), fd = new FormData(form), name = fd.get("name");
  const status = $("#add-status");
  for (const [field, id] of [["instances.jsonl", "#add-instances"], ["adapter.gguf", "#add-gguf"],
    ["adapter_config.json", "#add-config"], ["adapter_model.safetensors", "#add-weights"]]) {
    if (!$(id).files.length) fd.delete(field);
  }
  const peft = fd.has("adapter_config.json") && fd.has("adapter_model.safetensors");
  if (fd.has("adapter.gguf") === peft || (!peft && (fd.has("adapter_config.json") || fd.has("adapter_model.safetensors")))) {
    status.textContent = "Choose either adapter_config.json with adapter_model.safetensors, or one GGUF LoRA.";
    return;
  }
  status.textContent = "Uploading…";
  $("#add-btn").disabled = true;
  try {
    const r = await api("/v1/experts", { body: fd });
    status.textContent = `Added ${r.name}: ${r.num_instances} instances` + (r.num_instances ? ", routable now." : ", served by name only.");
    form.reset();
    await loadExperts();
    state.mapData = null;
    if (r.num_instances) { state.highlight = name; showTab("map"); }
  } catch (err) {
    status.textContent = "Not added: " + err.message;
    throw err;
  } finally {
    $("#add-btn").disabled = false;
  }
}

// ---- jobs ----------------------------------------------------------------

async function loadJobs() {
  const r = await api("/v1/jobs");
  state.jobs = r.data || [];
  if (!state.job && state.jobs.length) state.job = state.jobs[0].id;
  $("#job-list tbody").replaceChildren(...state.jobs.map((j) => {
    const p = j.progress || {};
    const live = j.status === "queued" || j.status === "running";
    const tr = el("tr", { "data-job": j.id, onclick: () => { state.job = j.id; drawLoss(); } },
      el("td", { text: j.id }), el("td", { text: j.request.name }), el("td", { class: "status", text: j.status + (j.error ? ": " + j.error : "") }),
      el("td", { class: "num step", text: p.step ? `${p.step}/${p.total}` : "—" }), el("td", { class: "num", text: fmt(p.loss) }),
      el("td", {}, live ? el("button", { class: "danger", onclick: run(async (e) => { e.stopPropagation(); await api("/v1/jobs/" + j.id, { method: "DELETE" }); await loadJobs(); }) }, "Cancel") : null));
    if (j.id === state.job) tr.classList.add("selected");
    return tr;
  }));
  drawLoss();
  clearTimeout(state.timers.jobs);
  if (!$("#jobs").hidden && state.jobs.some((j) => j.status === "queued" || j.status === "running")) {
    state.timers.jobs = setTimeout(run(loadJobs), 1000);
  }
  if (state.jobs.some((j) => j.status === "succeeded" && !state.experts.some((m) => m.name === j.request.name))) await loadExperts();
}

function drawLoss() {
  for (const tr of $$("#job-list tbody tr")) tr.classList.toggle("selected", tr.dataset.job === state.job);
  const c = $("#loss-canvas"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const j = state.jobs.find((x) => x.id === state.job);
  const pts = (j && j.losses) || [];
  g.fillStyle = "#6a737d";
  g.font = "12px sans-serif";
  if (pts.length < 1) { g.fillText("no loss yet", 12, 20); return; }
  const x1 = Math.max(...pts.map((p) => p[0]), 1), ys = pts.map((p) => p[1]);
  const y0 = Math.min(...ys), y1 = Math.max(...ys) + 1e-9, pad = 28;
  g.fillText(`loss ${fmt(ys[ys.length - 1])} at step ${pts[pts.length - 1][0]} (${j.request.name})`, pad, 16);
  g.strokeStyle = "#2457c5"; g.lineWidth = 2; g.beginPath();
  pts.forEach(([s, l], i) => {
    const x = pad + (c.width - 2 * pad) * s / x1, y = c.height - pad - (c.height - 2 * pad) * (l - y0) / (y1 - y0);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

async function doTrain(ev) {
  ev.preventDefault();
  const body = { name: $("#train-name").value.trim(), task: $("#train-task").value.trim(), steps: Number($("#train-steps").value) || 50 };
  if ($("#train-all").checked) body.all_prompts = true;
  const j = await api("/v1/jobs/train", { json: body });
  $("#train-status").textContent = `Job ${j.id} ${j.status}.`;
  state.job = j.id;
  await loadJobs();
}

// ---- health --------------------------------------------------------------

// parseMetrics reads the Prometheus text format into name{labels} → value.
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function sampleHealth() {
  const text = await api("/metrics");
  const m = parseMetrics(text), t = Date.now() / 1000;
  const get = (k) => m.get(k) || 0;
  const s = {
    t, queue: get("roe_queue_depth"), running: get("roe_num_requests_running"), waiting: get("roe_num_requests_waiting"),
    kv: get("roe_kv_cache_usage_perc"), tokens: get("roe_generated_tokens_total"),
    batchSum: get("roe_batch_size_sum"), batchN: get("roe_batch_size_count"),
    ttftSum: get("roe_time_to_first_token_seconds_sum"), ttftN: get("roe_time_to_first_token_seconds_count"),
    experts: get("roe_experts"), fallbacks: get("roe_routing_fallbacks_total"),
  };
  const prev = state.health[state.health.length - 1];
  if (prev) {
    const dt = Math.max(t - prev.t, 1e-3);
    s.tps = Math.max(0, (s.tokens - prev.tokens) / dt);
    s.batch = s.batchN > prev.batchN ? (s.batchSum - prev.batchSum) / (s.batchN - prev.batchN) : 0;
    s.ttft = s.ttftN > prev.ttftN ? (s.ttftSum - prev.ttftSum) / (s.ttftN - prev.ttftN) : null;
  }
  state.health.push(s);
  if (state.health.length > 300) state.health.shift();
  if (!$("#health").hidden) drawHealth();
}

function spark(values, fmtv) {
  const c = el("canvas", { width: 288, height: 60 }), g = c.getContext("2d");
  const vs = values.filter((v) => v != null);
  if (vs.length > 1) {
    const lo = Math.min(...vs, 0), hi = Math.max(...vs) || 1;
    g.strokeStyle = "#2457c5"; g.lineWidth = 1.5; g.beginPath();
    values.forEach((v, i) => {
      if (v == null) return;
      const x = (i / (values.length - 1)) * c.width, y = c.height - 4 - (c.height - 8) * (v - lo) / (hi - lo || 1);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }
  c.title = fmtv;
  return c;
}

function drawHealth() {
  const h = state.health, s = h[h.length - 1];
  if (!s) return;
  const card = (id, label, v) => el("div", { class: "card", id }, label, el("b", { text: v }));
  $("#health-cards").replaceChildren(
    card("h-queue", "queue", String(s.queue)), card("h-running", "running", String(s.running)),
    card("h-kv", "KV cache used", (100 * s.kv).toFixed(1) + "%"), card("h-experts", "experts", String(s.experts)),
    card("h-fallbacks", "routing fallbacks", String(s.fallbacks)), card("h-tokens", "tokens generated", String(s.tokens)),
    card("h-ttft", "mean time to first token", s.ttftN ? fmt(s.ttftSum / s.ttftN, 3) + " s" : "—"));
  const chart = (label, key, unit) => el("div", { class: "card" }, `${label} (last ${fmt(h[h.length - 1][key], 2)} ${unit})`,
    spark(h.map((x) => (x[key] == null ? null : x[key])), label));
  $("#health-charts").replaceChildren(chart("tokens/s", "tps", "tok/s"), chart("mean batch size", "batch", ""),
    chart("time to first token, mean of each 2 s", "ttft", "s"), chart("queue depth", "queue", ""));
}

// ---- wiring --------------------------------------------------------------

addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("#key").value.trim();
    sessionStorage.setItem("roe-key", state.key);
    run(start)();
  });
  $("#logout").addEventListener("click", () => signOut(""));
  for (const b of $$("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#search").addEventListener("input", renderExperts);
  $("#kind-filter").addEventListener("change", renderExperts);
  $("#route-form").addEventListener("submit", run(doRoute));
  $("#run-btn").addEventListener("click", run(doRun));
  $("#add-form").addEventListener("submit", run(doAdd));
  $("#train-form").addEventListener("submit", run(doTrain));
  mapEvents();
  run(start)();
});
