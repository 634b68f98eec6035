// OmniDash: fills the server-rendered shells from the JSON API and the live stream.
// No framework and no inline code (the CSP forbids it); one function per page.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const say = (text) => { $("#status").textContent = text; };

// Every read goes through here: a response the service worker served from its cache
// (offline) carries x-omnihub-stale, and the page says how old it is.
async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (init.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.body);
  }
  if ((init.method || "GET") !== "GET") init.headers["X-CSRF-Token"] = csrf();
  const r = await fetch(path, init);
  const stale = r.headers.get("x-omnihub-stale");
  if (stale) {
    const box = $("#stale");
    box.hidden = false;
    box.textContent = `Offline: showing data saved at ${when(stale)} (stale).`;
  }
  if (r.status === 401) { location.href = `/dashboard/signin?next=${encodeURIComponent(location.pathname)}`; }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : {};
  if (!r.ok) throw Object.assign(new Error(body.detail || `${r.status}`), { body });
  return body;
}

// A read made after the stream is positioned, once the projection has caught up with the
// log: then every event is in the read or on the stream (or both: deduplicated by id).
async function readCaughtUp(path) {
  let last = null;
  for (let i = 0; i < 20; i++) {
    try {
      last = await api(path);
      if (last.freshness?.caught_up !== false) return last;
    } catch (err) {
      if (!err.body || err.body.freshness?.caught_up !== false) throw err;
    }
    await new Promise((done) => setTimeout(done, 500));
  }
  if (last) return last;
  throw new Error("the read models are behind");
}

// The live stream: EventSource resumes by itself with Last-Event-ID after a drop.
function live(params, onEvent, onReady = () => {}) {
  const q = new URLSearchParams(params);
  const source = new EventSource(`/api/v1/stream?${q}`);
  let loaded = false;
  const loadOnce = () => { if (!loaded) { loaded = true; onReady(); } };
  source.addEventListener("ready", () => { say("live"); loaded = false; loadOnce(); });
  source.addEventListener("heartbeat", () => say(`live · ${new Date().toLocaleTimeString()}`));
  source.addEventListener("run_event", (m) => onEvent(JSON.parse(m.data)));
  // No stream (offline, the log down): show what can be read anyway, live or not.
  source.addEventListener("error", () => { say("reconnecting…"); loadOnce(); });
  return source;
}

function statusCell(status) {
  return el("span", { class: `badge s-${status}`, text: status || "?" });
}

// ---- runs ------------------------------------------------------------------------
async function runsPage() {
  const body = $("#runs tbody");
  const rows = new Map();
  let cursor = null;
  const filters = () => {
    const f = new FormData($("#run-filters"));
    const q = { limit: "20" };
    if (f.get("status")) q.status = f.get("status");
    if (f.get("since")) q.since = new Date(f.get("since")).toISOString();
    return q;
  };
  const row = (r) => {
    const tr = el("tr", { "data-run": r.run_id },
      el("td", {}, el("a", { href: `/dashboard/runs/${encodeURIComponent(r.run_id)}`, text: r.run_id })),
      el("td", { text: r.goal || "" }),
      el("td", { class: "status" }, statusCell(r.status)),
      el("td", { class: "steps", text: `${r.steps_completed || 0}/${r.steps_planned || 0}` }),
      el("td", { class: "cache", text: r.cache_hit ? "hit" : "" }),
      el("td", { text: when(r.created_at) }));
    rows.set(r.run_id, tr);
    return tr;
  };
  // Events that arrive while the first page is read wait for it: the read replaces the
  // table, and a run posted meanwhile (its goal_received already on the stream) would
  // otherwise vanish from it, its later events finding no row.
  let loading = false;
  let held = [];
  async function load(more) {
    const q = filters();
    if (more && cursor) q.cursor = cursor;
    const path = `/api/v1/runs?${new URLSearchParams(q)}`;
    if (!more) loading = true;
    try {
      const page = more ? await api(path) : await readCaughtUp(path);
      if (!more) { body.replaceChildren(); rows.clear(); }
      page.items.forEach((r) => body.append(row(r)));
      cursor = page.next_cursor;
      $("#more").hidden = !cursor;
    } finally {
      if (!more) {
        loading = false;
        const waiting = held;
        held = [];
        waiting.forEach(onEvent);
      }
    }
  }
  $("#run-filters").addEventListener("submit", (e) => { e.preventDefault(); load(false); });
  $("#more").addEventListener("click", () => load(true));
  $("#goal-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const goal = $("#goal").value;
    try {
      const accepted = await api("/api/v1/goals", { method: "POST", body: { goal } });
      say(`goal accepted: run ${accepted.run_id}`);
      $("#goal").value = "";
    } catch (err) { say(`goal refused: ${err.message}`); }
  });
  function onEvent(ev) {
    if (loading) { held.push(ev); return; }
    let tr = rows.get(ev.run_id);
    if (!tr && ev.event_type === "goal_received" && !filters().status) {
      tr = row({ run_id: ev.run_id, goal: ev.payload.goal, status: "received", created_at: ev.occurred_at });
      body.prepend(tr);
    }
    if (!tr) return;
    if (ev.run.status) tr.querySelector(".status").replaceChildren(statusCell(ev.run.status));
    tr.querySelector(".steps").textContent = `${ev.run.steps_completed}/${ev.run.steps_planned}`;
    if (ev.run.cache_hit) tr.querySelector(".cache").textContent = "hit";
  }
  live({}, onEvent, () => load(false).catch((err) => say(`could not load: ${err.message}`)));
}

// ---- one run ----------------------------------------------------------------------
const STEP_STATE = {
  step_started: "running", step_completed: "completed", approval_requested: "awaiting_approval",
  approval_granted: "approved", approval_denied: "denied", step_compensated: "compensated",
  step_compensation_failed: "compensation_failed",
};

const STEP_RANK = [undefined, "running", "awaiting_approval", "approved", "denied", "completed",
  "failed", "compensated", "compensation_failed"];

function drawDag(steps, states) {
  const level = {};
  const depth = (s) => level[s.step_id] ??= 1 + Math.max(-1, ...s.depends_on.map(
    (d) => depth(steps.find((x) => x.step_id === d) || { step_id: d, depends_on: [] })));
  steps.forEach(depth);
  const columns = {};
  steps.forEach((s) => (columns[level[s.step_id]] ??= []).push(s));
  const at = {};
  const W = 170, H = 64;
  Object.entries(columns).forEach(([lv, col]) => col.forEach((s, i) => { at[s.step_id] = [20 + lv * W, 20 + i * H]; }));
  const width = 40 + W * Object.keys(columns).length;
  const height = 40 + H * Math.max(...Object.values(columns).map((c) => c.length));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `plan with ${steps.length} steps` });
  for (const s of steps) {
    for (const d of s.depends_on) {
      if (!at[d]) continue;
      root.append(svg("line", { x1: at[d][0] + 130, y1: at[d][1] + 20, x2: at[s.step_id][0], y2: at[s.step_id][1] + 20, class: "edge" }));
    }
  }
  for (const s of steps) {
    const [x, y] = at[s.step_id];
    const state = states[s.step_id] || "pending";
    const g = svg("g", { class: `node n-${state}`, "data-step": s.step_id });
    g.append(svg("rect", { x, y, width: 130, height: 40, rx: 6 }));
    const label = svg("text", { x: x + 8, y: y + 17 });
    label.textContent = `${s.step_id} · ${s.tool}`;
    const st = svg("text", { x: x + 8, y: y + 33, class: "state" });
    st.textContent = state + (s.risk >= 0.7 ? " · risky" : "");
    g.append(label, st);
    root.append(g);
  }
  $("#dag").replaceChildren(root);
}

async function runPage() {
  const runId = document.body.dataset.runId;
  const seen = new Set();
  const states = {};
  let steps = [];
  let streamStatus = null;  // the stream's fold is ahead of the projection: it wins
  const summary = (r) => {
    const dl = $("#summary");
    dl.replaceChildren();
    const add = (k, v) => dl.append(el("dt", { text: k }), el("dd", {}, v));
    add("Status", statusCell(streamStatus || r.status));
    add("Goal", r.goal || "");
    add("Cache hit", r.cache_hit ? `yes (similarity ${r.cache_similarity ?? "?"})` : "no");
    add("Steps", `${r.steps_completed}/${r.steps_planned} completed, ${r.steps_failed || 0} failed`);
    if (r.outcome_reason) add("Outcome", r.outcome_reason);
  };
  const apply = (ev) => {
    if (seen.has(ev.event_id)) return;
    seen.add(ev.event_id);
    const p = ev.payload || {};
    $("#timeline").append(el("li", { "data-type": ev.event_type },
      el("time", { datetime: ev.occurred_at, text: when(ev.occurred_at) }), " ",
      el("strong", { text: ev.event_type }), " — ", ev.summary));
    if (ev.event_type === "plan_generated") steps = p.steps;
    // A step's state only moves forward (however its events were merged from the read
    // and the stream): an approval's news never hides what the step then did.
    const next = ev.event_type === "step_failed" && p.final ? "failed" : STEP_STATE[ev.event_type];
    if (p.step_id && next && STEP_RANK.indexOf(next) >= STEP_RANK.indexOf(states[p.step_id])) {
      states[p.step_id] = next;
    }
    if (ev.event_type === "step_compensated" || ev.event_type === "step_compensation_failed") {
      $("#compensations").append(el("li", { text: `${p.step_id}: ${p.compensation_tool || ""} ${ev.event_type === "step_compensated" ? "undone" : "failed"}` }));
    }
    if (steps.length) drawDag(steps, states);
  };
  const load = async () => {
    try {
      const run = await readCaughtUp(`/api/v1/runs/${encodeURIComponent(runId)}`);
      summary(run);
      run.timeline.forEach(apply);
    } catch (err) { say(`run not projected yet: ${err.message}`); }
  };
  // The stream first; once it is positioned ("ready"), the read (see readCaughtUp).
  live({ run_id: runId }, (ev) => {
    apply(ev);
    streamStatus = ev.run.status || streamStatus;
    const badge = $("#summary dd .badge");
    if (streamStatus && badge) badge.replaceWith(statusCell(streamStatus));
    // The projection follows the stream by a moment: read the summary again after it.
    for (const ms of [800, 3000]) {
      setTimeout(() => api(`/api/v1/runs/${encodeURIComponent(runId)}`).then(summary).catch(() => {}), ms);
    }
  }, load);
  $("#cancel-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api(`/api/v1/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST", body: { reason: $("#cancel-reason").value } });
      say("cancel requested");
    } catch (err) { say(`cancel refused: ${err.message}`); }
  });
}

// ---- approvals ----------------------------------------------------------------------
async function approvalsPage() {
  const body = $("#approvals tbody");
  const wanted = new URLSearchParams(location.search).get("id");
  async function load() {
    const page = await readCaughtUp("/api/v1/approvals?status=pending&limit=100");
    body.replaceChildren();
    for (const a of page.items) {
      const reason = el("input", { id: `r-${a.approval_id}`, maxlength: "2000", placeholder: "reason" });
      const decide = (decision) => async () => {
        try {
          await api(`/api/v1/approvals/${encodeURIComponent(a.approval_id)}`, { method: "POST",
            body: { decision, note: reason.value || null } });  // the decider is the signed-in key
          say(`${decision === "grant" ? "approved" : "denied"} ${a.approval_id}`);
          tr.remove();
        } catch (err) { say(`decision refused: ${err.message}`); }
      };
      const tr = el("tr", { "data-approval": a.approval_id, class: a.approval_id === wanted ? "wanted" : "" },
        el("td", {}, el("a", { href: `/dashboard/runs/${encodeURIComponent(a.run_id)}`, text: a.run_id })),
        el("td", { text: a.step_id }), el("td", { text: a.tool }),
        el("td", { text: Number(a.risk).toFixed(2) }), el("td", { text: (a.reasons || []).join("; ") }),
        el("td", { text: when(a.expires_at) }),
        el("td", {}, el("label", { for: `r-${a.approval_id}`, class: "sr-only", text: `Reason for ${a.approval_id}` }), reason,
          el("button", { type: "button", class: "approve", onclick: decide("grant"), text: "Approve" }),
          el("button", { type: "button", class: "deny", onclick: decide("deny"), text: "Deny" })));
      body.append(tr);
    }
    if (!page.items.length) body.append(el("tr", {}, el("td", { colspan: "7", text: "Nothing waits for a decision." })));
    // Still behind after readCaughtUp's wait (a busy projector): the event that woke this
    // read may not be in it yet, and no other event may come, so read again until it is.
    if (page.freshness?.caught_up === false) {
      say("the read models are behind; reading again");
      clearTimeout(timer);
      timer = setTimeout(reload, 1000);
    }
  }
  // Read once the stream is positioned and again after each approval event, each time
  // from a projection that has caught up with the log: no request falls between the two.
  const reload = () => load().catch((err) => {
    say(`could not load: ${err.message}`);
    if (err.message === "the read models are behind") { clearTimeout(timer); timer = setTimeout(reload, 1000); }
  });
  let timer = null;
  live({ event_type: "approval_requested,approval_granted,approval_denied" }, () => {
    clearTimeout(timer);
    timer = setTimeout(reload, 300);
  }, reload);
}

// ---- KPIs -------------------------------------------------------------------------
function chart(title, points, fmt = (v) => String(v)) {
  const W = 420, H = 140, pad = 30;
  const max = Math.max(1e-9, ...points.map((p) => p.v));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": `${title}: last ${fmt(points.length ? points[points.length - 1].v : 0)}` });
  root.append(svg("line", { x1: pad, y1: H - pad, x2: W - 5, y2: H - pad, class: "axis" }));
  const x = (i) => pad + (i * (W - pad - 5)) / Math.max(1, points.length - 1);
  const y = (v) => H - pad - (v / max) * (H - pad - 24);  // the top label sits above the plot
  root.append(svg("polyline", { points: points.map((p, i) => `${x(i)},${y(p.v)}`).join(" "), class: "series" }));
  points.forEach((p, i) => root.append(svg("circle", { cx: x(i), cy: y(p.v), r: 3, class: "point" })));
  const top = svg("text", { x: 2, y: 11, class: "tick" });
  top.textContent = fmt(max);
  root.append(top);
  const minute = (p) => new Date(p.t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (points.length) {
    const first = svg("text", { x: pad, y: H - 10, class: "tick" });
    first.textContent = minute(points[0]);
    const last = svg("text", { x: W - 5, y: H - 10, class: "tick", "text-anchor": "end" });
    last.textContent = minute(points[points.length - 1]);
    root.append(first, last);
  }
  return el("figure", { class: "card chart" }, el("figcaption", { text: title }), root);
}

async function kpisPage() {
  const data = await api("/api/v1/kpis?limit=120");
  const rows = [...data.items].reverse();
  const series = (f) => rows.map((r) => ({ t: r.minute, v: Number(r[f] || 0) }));
  const ms = (v) => `${Math.round(v)} ms`;
  $("#charts").replaceChildren(
    chart("Goals per minute", series("goals")),
    chart("Completions per minute", series("completions")),
    chart("Failures per minute", series("failures")),
    chart("Run duration p50", series("p50"), ms),
    chart("Run duration p95", series("p95"), ms),
    chart("Plan cache hit rate", series("cache_hit_rate"), (v) => `${Math.round(v * 100)}%`));
  say(`${rows.length} minutes`);
}

// ---- live counters ----------------------------------------------------------------
async function livePage() {
  async function load() {
    const data = await api("/api/v1/live?limit=20");
    $("#counters").replaceChildren(...Object.entries(data.counters).flatMap(([k, v]) =>
      [el("dt", { text: k.replaceAll("_", " ") }), el("dd", { text: String(v) })]));
    $("#recent tbody").replaceChildren(...data.recent.map((r) => el("tr", {},
      el("td", {}, el("a", { href: `/dashboard/runs/${encodeURIComponent(r.run_id)}`, text: r.run_id })),
      el("td", { text: r.goal || "" }), el("td", {}, statusCell(r.status)), el("td", { text: when(r.updated_at) }))));
  }
  await load();
  let timer = null;
  live({}, () => { clearTimeout(timer); timer = setTimeout(load, 300); });
}

// ---- admin ------------------------------------------------------------------------
async function adminPage() {
  const switches = await api("/api/v1/admin/kill-switches").catch((e) => ({ error: e.message }));
  const sBody = $("#switches tbody");
  if (switches.error) sBody.append(el("tr", {}, el("td", { colspan: "4", text: switches.error })));
  else for (const s of switches) {
    const toggle = async () => {
      const reason = prompt(`Reason to ${s.enabled ? "disable" : "enable"} ${s.feature}`) || "from the dashboard";
      await api(`/api/v1/admin/kill-switches/${s.feature}`, { method: "PUT", body: { enabled: !s.enabled, reason } });
      location.reload();
    };
    sBody.append(el("tr", {}, el("td", { text: s.feature }), el("td", { text: s.enabled ? "yes" : "no (killed)" }),
      el("td", { text: s.reason || "" }), el("td", {}, el("button", { type: "button", onclick: toggle, text: s.enabled ? "Disable" : "Enable" }))));
  }
  const keys = await api("/api/v1/keys").catch((e) => ({ error: e.message }));
  const kBody = $("#keys tbody");
  if (keys.error) kBody.append(el("tr", {}, el("td", { colspan: "5", text: keys.error })));
  else for (const k of keys) {
    const revoke = async () => {
      await api(`/api/v1/keys/${k.key_id}/revoke`, { method: "POST", body: {} });
      location.reload();
    };
    kBody.append(el("tr", {}, el("td", { text: k.prefix }), el("td", { text: k.scopes.join(" ") }),
      el("td", { text: when(k.created_at) }), el("td", { text: k.revoked_at ? "revoked" : "active" }),
      el("td", {}, k.revoked_at ? "" : el("button", { type: "button", onclick: revoke, text: "Revoke" }))));
  }
  await tierCard().catch((e) => { $("#tier").textContent = `tier unavailable: ${e.message}`; });
  say("");
}

// The tenant's tier from GET /api/v1/tenant: where it comes from, until when, what it allows.
async function tierCard() {
  const t = await api("/api/v1/tenant");
  const until = t.expires_at ? `until ${when(t.expires_at)}` : "no expiry";
  $("#tier").replaceChildren("Tier ", el("strong", { class: "tier-name", text: t.tier }),
    ` from ${t.source}, ${until} (evaluated ${when(t.evaluated_at)}).`);
  const show = (v) => (v === null ? "unlimited" : Array.isArray(v) ? v.map(show).join(" to ") : String(v));
  $("#entitlements tbody").replaceChildren(...Object.entries(t.entitlements).map(([name, g]) =>
    el("tr", { "data-entitlement": name }, el("td", { text: name }), el("td", { text: show(g.value) }),
      el("td", { text: g.source }))));
  $("#tier-sources tbody").replaceChildren(...t.sources.map((s) =>
    el("tr", {}, el("td", { text: s.source }), el("td", { text: s.tier }),
      el("td", { text: s.expires_at ? when(s.expires_at) : "never" }),
      el("td", { text: s.active ? "yes" : "no (expired)" }), el("td", { text: s.wallet || "" }))));
}

// ---- sign-in with a wallet (SIWE, EIP-4361) through the browser's EIP-1193 provider ----
function siweText(n, tenant) {
  const lines = [`${n.domain} wants you to sign in with your Ethereum account:`, n.address, "",
    n.statement, "", `URI: ${n.uri}`, `Version: ${n.version}`, `Chain ID: ${n.chain_id}`,
    `Nonce: ${n.nonce}`, `Issued At: ${new Date().toISOString()}`,
    `Expiration Time: ${new Date(Date.now() + 5 * 60 * 1000).toISOString()}`];
  if (tenant) lines.push("Resources:", `- urn:omnihub:tenant:${tenant}`);
  return lines.join("\n");
}

async function postJson(path, body) {
  const r = await fetch(path, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(answer.detail || `${r.status}`), { body: answer });
  return answer;
}

async function signinPage() {
  const button = $("#wallet-signin");
  const status = $("#wallet-status");
  const choice = $("#wallet-choice");
  button.addEventListener("click", async () => {
    status.textContent = "";
    if (!window.ethereum) { status.textContent = "No wallet in this browser (no EIP-1193 provider)."; return; }
    try {
      const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
      const n = await postJson("/dashboard/signin/wallet/nonce", { address: account });
      const text = siweText(n, choice.hidden ? "" : $("#wallet-tenant").value);
      const hex = "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
      const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, n.address] });
      const done = await postJson("/dashboard/signin/wallet", { message: text, signature, next: button.dataset.next });
      location.href = done.next;
    } catch (err) {
      const tenants = err.body?.tenants;
      if (tenants) {  // linked to several tenants: pick one, then sign again
        $("#wallet-tenant").replaceChildren(...tenants.map((t) => el("option", { value: t, text: t })));
        choice.hidden = false;
      }
      status.textContent = `Wallet sign-in refused: ${err.message}`;
    }
  });
}

// ---- audit ------------------------------------------------------------------------
async function auditPage() {
  // The page's own check: its range of sequences recomputed from the read model.
  function pageCheck(v) {
    const erased = v.erased ? `, ${v.erased} erased (links checked, content unreadable)` : "";
    if (v.ok) {
      return v.records || v.erased
        ? `this page verified: sequences ${v.from_sequence}–${v.to_sequence}, ${v.records} records hashed${erased}, anchored at ${v.anchor}`
        : "this page: no records to verify";
    }
    const b = v.broken || {};
    return `this page BROKEN at sequence ${b.sequence}: ${b.reason} (expected ${b.expected}, found ${b.actual})`;
  }
  // The whole chain recomputed from the log, the system of record.
  function chainCheck(chain) {
    const which = chain === "platform" ? "platform chain" : "chain";
    api(`/api/v1/audit/verify${chain === "platform" ? "?chain=platform" : ""}`).then((v) => {
      if (v.ok && !v.records) $("#chain").textContent = `${which}: no records yet`;
      else $("#chain").textContent = v.ok
        ? `${which} verified from the log: ${v.records} records, head ${String(v.head).slice(0, 16)}…`
        : `${which} BROKEN: ${v.broken}`;
      $("#chain").className = `card ${v.ok ? "ok" : "error"}`;
    }).catch((e) => { $("#chain").textContent = `${which} not verified: ${e.message}`; });
  }
  async function load() {
    const f = new FormData($("#audit-filters"));
    const q = { limit: "100", chain: f.get("chain") || "tenant" };
    for (const k of ["category", "outcome"]) if (f.get(k)) q[k] = f.get(k);
    const data = await api(`/api/v1/audit?${new URLSearchParams(q)}`);
    $("#audit tbody").replaceChildren(...data.items.map((a) => el("tr", {},
      el("td", { text: when(a.occurred_at) }), el("td", { text: a.actor }), el("td", { text: a.category }),
      el("td", { text: a.action }), el("td", { text: a.outcome }), el("td", { text: a.resource }),
      el("td", { text: String(a.sequence ?? "") }))));
    $("#page-check").textContent = pageCheck(data.verification);
    $("#page-check").className = `card ${data.verification.ok ? "ok" : "error"}`;
    say(`${data.items.length} records of the ${q.chain} chain`);
    chainCheck(q.chain);
  }
  $("#audit-filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("#a-chain").addEventListener("change", () => load());
  await load();
}

// ---- operations -------------------------------------------------------------------
async function operationsPage() {
  const data = await api("/api/v1/operations");
  $("#lag tbody").replaceChildren(...data.freshness.partitions.map((p) => el("tr", {},
    el("td", { text: p.topic }), el("td", { text: String(p.partition) }), el("td", { text: String(p.next_offset) }),
    el("td", { text: String(p.end_offset ?? "?") }), el("td", { text: String(p.lag ?? "?") }))));
  $("#letters tbody").replaceChildren(...(data.dead_letters.length ? data.dead_letters.map((d) => el("tr", {},
    el("td", { text: new Date(d.timestamp_ms).toLocaleString() }), el("td", { text: d.consumer || "" }),
    el("td", { text: d.event_type || "" }), el("td", { text: d.reason || "" }), el("td", { text: (d.detail || "").slice(0, 200) }),
    el("td", { text: d.source || "" })))
    : [el("tr", {}, el("td", { colspan: "6", text: "No dead letters for this tenant." }))]));
  say(`projection lag: ${data.freshness.lag_events ?? "?"} events`);
}

// ---- notification channels ----------------------------------------------------------
async function notificationsPage() {
  async function load() {
    const data = await api("/api/v1/notifications/channels");
    $("#channels tbody").replaceChildren(...data.items.map((c) => el("tr", {},
      el("td", { text: c.kind }), el("td", { text: c.target }),
      el("td", {}, el("button", { type: "button", text: "Remove", onclick: async () => {
        await api(`/api/v1/notifications/channels/${c.channel_id}`, { method: "DELETE" });
        load();
      } })))));
    if (!data.items.length) $("#channels tbody").append(el("tr", {}, el("td", { colspan: "3", text: "No channels yet." })));
  }
  $("#channel-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("/api/v1/notifications/channels", { method: "POST", body: { kind: $("#c-kind").value, target: $("#c-target").value } });
      $("#c-target").value = "";
      load();
    } catch (err) { say(`refused: ${err.message}`); }
  });
  $("#push-here").addEventListener("click", async () => {
    try {
      const { public_key: key } = await api("/api/v1/notifications/vapid");
      if ((await Notification.requestPermission()) !== "granted") throw new Error("permission refused");
      const reg = await navigator.serviceWorker.ready;
      const raw = Uint8Array.from(atob(key.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: raw });
      await api("/api/v1/notifications/channels", { method: "POST", body: { kind: "webpush", target: JSON.stringify(sub) } });
      load();
    } catch (err) { say(`push not enabled: ${err.message}`); }
  });
  await load().catch((err) => say(err.message));
}

const PAGES = {
  runs: runsPage, run: runPage, approvals: approvalsPage, kpis: kpisPage, live: livePage,
  signin: signinPage, admin: adminPage, audit: auditPage, operations: operationsPage, notifications: notificationsPage,
};

// Signing out forgets the data saved for offline use: the next person sees none of it.
document.querySelector(".signout")?.addEventListener("submit", () => {
  if (window.caches) caches.delete("omnidash-data-v1");
});

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/dashboard/sw.js", { scope: "/dashboard/" }).catch(() => {});
}
const start = PAGES[document.body.dataset.page];
if (start) start().catch((err) => say(`could not load: ${err.message}`));
