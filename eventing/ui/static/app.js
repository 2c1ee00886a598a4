// The eventing dashboard: the flow graph with live rates, per-trigger and per-workload
// history, scale decisions with their reasons, and the dead letters with replay.
// State comes from GET /v1/ui/state once, then live by server-sent events from
// /v1/ui/stream (one sample a second, and each scale decision as it happens).
"use strict";

(function () {
  const C = window.Charts;
  const KEEP = 900;          // samples kept (15 minutes at one a second)
  const RATE_WINDOW = 5;     // seconds over which flow rates are computed
  const DLQ_REFRESH = 10;    // seconds: the dead-letter list is re-read at least this often
  const state = { topology: null, samples: [], decisions: [], dlqTotal: -1, dlqAt: 0 };

  function $(selector, root) { return (root || document).querySelector(selector); }

  function make(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  async function getJSON(url, init) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, init || {}));
    const body = await response.json();
    if (!response.ok && response.status !== 207) {
      throw new Error(body.error || `HTTP ${response.status}`);
    }
    return body;
  }

  function setStatus(value, text) {
    const status = $("#status");
    status.dataset.state = value;
    status.textContent = text || value;
  }

  // --- numbers over time -------------------------------------------------------------

  function last() { return state.samples[state.samples.length - 1]; }

  function series(pick) {
    return state.samples.map((s) => [s.t, pick(s)]);
  }

  function rateSeries(pick) {
    const out = [];
    for (let i = 1; i < state.samples.length; i++) {
      const a = state.samples[i - 1], b = state.samples[i];
      const va = pick(a), vb = pick(b);
      const dt = b.t - a.t;
      out.push([b.t, va === undefined || vb === undefined || dt <= 0 ? null : Math.max(0, (vb - va) / dt)]);
    }
    return out;
  }

  function rate(pick) {
    const n = state.samples.length;
    if (n < 2) return 0;
    const b = state.samples[n - 1];
    let i = n - 2;
    while (i > 0 && b.t - state.samples[i].t < RATE_WINDOW) i--;
    const a = state.samples[i];
    const va = pick(a), vb = pick(b);
    if (va === undefined || vb === undefined || b.t <= a.t) return 0;
    return Math.max(0, (vb - va) / (b.t - a.t));
  }

  function window_() {
    const s = state.samples;
    const t1 = s.length ? s[s.length - 1].t : Date.now() / 1000;
    const t0 = s.length ? Math.max(s[0].t, t1 - KEEP) : t1 - 60;
    return { t0: Math.min(t0, t1 - 30), t1: t1 };
  }

  const get = (obj, ...path) => path.reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);

  // --- flow graph --------------------------------------------------------------------

  function drawFlow() {
    const svg = $("#flow");
    const topo = state.topology;
    const targets = [];
    const seen = new Set();
    for (const t of topo.triggers) {
      for (const target of targetsOf(t)) {
        if (!seen.has(target.id)) { seen.add(target.id); targets.push(target); }
      }
    }
    for (const w of topo.workloads) {
      const id = "workload:" + w.name;
      if (!seen.has(id)) { seen.add(id); targets.push({ id: id, workload: w.name, label: w.name }); }
    }
    const columns = [
      topo.sources.map((s) => ({ id: "source:" + s.name, label: s.name, sub: s.kind, kind: "source", data: s })),
      topo.brokers.map((b) => ({ id: "broker:" + b.name, label: b.name, sub: b.class, kind: "broker", data: b })),
      topo.triggers.map((t) => ({ id: "trigger:" + t.name, label: t.name, kind: "trigger", data: t })),
      targets.map((t) => ({ id: t.id, label: t.label, kind: t.workload ? "workload" : "target", data: t })),
    ].filter((col) => col.length);
    const nodeH = 40, gap = 14, nodeW = 190;
    const rows = Math.max(1, ...columns.map((c) => c.length));
    const width = Math.max(svg.clientWidth || 900, columns.length * (nodeW + 30));
    const height = rows * (nodeH + gap) + gap + 10;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("height", String(height));
    C.clear(svg);
    const pos = {};
    const colX = (i) => 10 + i * ((width - nodeW - 20) / Math.max(1, columns.length - 1));
    columns.forEach((col, i) => {
      const offset = (height - col.length * (nodeH + gap)) / 2;
      col.forEach((node, j) => { pos[node.id] = { x: colX(i), y: offset + j * (nodeH + gap), node: node }; });
    });
    const sample = last() || {};
    const edges = [];
    for (const s of topo.sources) {
      if (s.broker) edges.push(["source:" + s.name, "broker:" + s.broker, rate((x) => get(x, "sources", s.name, "emitted"))]);
    }
    for (const t of topo.triggers) {
      const delivered = rate((x) => get(x, "triggers", t.name, "delivered"));
      edges.push(["broker:" + t.broker, "trigger:" + t.name, delivered]);
      for (const target of targetsOf(t)) {
        // A canary split's edges carry each target's percent instead of a rate.
        edges.push(["trigger:" + t.name, target.id, delivered, target.percent != null ? target.percent + "%" : null]);
      }
    }
    const edgeLayer = C.el("g", {}, svg);
    for (const [from, to, r, label] of edges) {
      const a = pos[from], b = pos[to];
      if (!a || !b) continue;
      const x1 = a.x + nodeW, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2;
      const mid = (x1 + x2) / 2;
      C.el("path", { class: r > 0 ? "edge active" : "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }, edgeLayer);
      const text = label || (r > 0 ? r.toFixed(1) + "/s" : null);
      if (text) C.el("text", { class: "edge-label", x: mid, y: (y1 + y2) / 2 - 3, "text-anchor": "middle" }, edgeLayer).textContent = text;
    }
    for (const p of Object.values(pos)) {
      const node = p.node;
      const g = C.el("g", { class: "node " + node.kind, transform: `translate(${p.x},${p.y})`, "data-id": node.id }, svg);
      C.el("rect", { width: nodeW, height: nodeH, rx: 6 }, g);
      C.el("text", { x: 8, y: 16 }, g).textContent = node.label.length > 28 ? node.label.slice(0, 27) + "…" : node.label;
      C.el("text", { class: "rate", x: 8, y: 32 }, g).textContent = nodeDetail(node, sample);
    }
  }

  // Where a trigger delivers: its one subscriber, or each target of a canary split.
  function targetsOf(t) {
    if (t.targets && t.targets.length) return t.targets;
    return [{ id: t.workload ? "workload:" + t.workload : t.subscriber, workload: t.workload, label: t.workload || t.subscriber }];
  }

  function nodeDetail(node, sample) {
    if (node.kind === "broker") {
      return `in ${rate((x) => get(x, "brokers", node.data.name, "entered")).toFixed(1)}/s · ${node.data.class}`;
    }
    if (node.kind === "source") {
      return `${node.sub} · ${rate((x) => get(x, "sources", node.data.name, "emitted")).toFixed(1)}/s`;
    }
    if (node.kind === "trigger") {
      const t = get(sample, "triggers", node.data.name) || {};
      return `backlog ${t.backlog || 0} · in flight ${t.inFlight || 0}`;
    }
    if (node.kind === "workload") {
      const w = get(sample, "workloads", node.data.workload) || {};
      return `ready ${w.ready || 0} · desired ${w.desired || 0}`;
    }
    return "subscriber";
  }

  // --- trigger cards -----------------------------------------------------------------

  function buildTriggers() {
    const root = $("#triggers");
    C.clear(root);
    if (!state.topology.triggers.length) root.appendChild(make("p", { class: "empty" }, "no triggers"));
    for (const t of state.topology.triggers) {
      const card = make("div", { class: "card trigger", "data-name": t.name });
      card.appendChild(make("h3", {}, t.name));
      card.appendChild(make("div", { class: "target" }, `${t.broker} → ${t.workload ? "workload " + t.workload : t.subscriber}`));
      card.appendChild(make("div", { class: "numbers" }));
      for (const [cls, legend] of [
        ["c-depth", [["backlog", "backlog"], ["inflight", "in flight"]]],
        ["c-rates", [["delivered", "delivered/s"], ["failed", "failed/s"]]],
        ["c-age", [["age", "oldest event age (s)"]]],
      ]) {
        const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        svg.setAttribute("class", "chart " + cls);
        card.appendChild(svg);
        const keys = make("div", { class: "legend" });
        for (const [k, label] of legend) keys.appendChild(make("span", { class: "k-" + k }, label + " "));
        card.appendChild(keys);
      }
      root.appendChild(card);
    }
  }

  function renderTriggers() {
    const win = window_();
    const sample = last() || {};
    for (const t of state.topology.triggers) {
      const card = $(`.card.trigger[data-name="${CSS.escape(t.name)}"]`);
      if (!card) continue;
      const now = get(sample, "triggers", t.name) || {};
      card.dataset.backlog = now.backlog || 0;
      card.dataset.delivered = now.delivered || 0;
      card.dataset.failed = now.failed || 0;
      const numbers = $(".numbers", card);
      C.clear(numbers);
      for (const [label, value] of [
        ["backlog", now.backlog], ["in flight", now.inFlight], ["delivered", now.delivered],
        ["failed", now.failed], ["dead letters", now.dlq],
        ["oldest", now.oldestAge === null || now.oldestAge === undefined ? "-" : now.oldestAge.toFixed(1) + " s"],
      ]) {
        const span = make("span", {}, label + " ");
        span.appendChild(make("b", {}, value === undefined ? 0 : value));
        numbers.appendChild(span);
      }
      C.draw($(".c-depth", card), Object.assign({}, win, { lines: [
        { cls: "s-backlog", points: series((s) => get(s, "triggers", t.name, "backlog")) },
        { cls: "s-inflight", points: series((s) => get(s, "triggers", t.name, "inFlight")) },
      ] }));
      C.draw($(".c-rates", card), Object.assign({}, win, { unit: "/s", lines: [
        { cls: "s-delivered", points: rateSeries((s) => get(s, "triggers", t.name, "delivered")) },
        { cls: "s-failed", points: rateSeries((s) => get(s, "triggers", t.name, "failed")) },
      ] }));
      C.draw($(".c-age", card), Object.assign({}, win, { unit: "s", lines: [
        { cls: "s-age", points: series((s) => { const v = get(s, "triggers", t.name, "oldestAge"); return v === undefined ? null : v; }) },
      ] }));
    }
  }

  // --- workload cards ----------------------------------------------------------------

  function buildWorkloads() {
    const root = $("#workloads");
    C.clear(root);
    if (!state.topology.workloads.length) root.appendChild(make("p", { class: "empty" }, "no workloads"));
    for (const w of state.topology.workloads) {
      const card = make("div", { class: "card workload", "data-name": w.name });
      card.appendChild(make("h3", {}, w.name));
      card.appendChild(make("div", { class: "numbers" }));
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "chart replicas");
      card.appendChild(svg);
      const keys = make("div", { class: "legend" });
      for (const [k, label] of [["ready", "ready"], ["starting", "starting"], ["draining", "draining"], ["desired", "desired"], ["decision", "decision"]]) {
        keys.appendChild(make("span", { class: "k-" + k }, label + " "));
      }
      card.appendChild(keys);
      card.appendChild(make("ol", { class: "decisions", reversed: "" }));
      root.appendChild(card);
    }
  }

  function clock(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  function renderWorkloads() {
    const win = window_();
    const sample = last() || {};
    for (const w of state.topology.workloads) {
      const card = $(`.card.workload[data-name="${CSS.escape(w.name)}"]`);
      if (!card) continue;
      const now = get(sample, "workloads", w.name) || {};
      const desired = series((s) => get(s, "workloads", w.name, "desired"));
      card.dataset.ready = now.ready || 0;
      card.dataset.desired = now.desired || 0;
      card.dataset.maxDesired = Math.max(0, ...desired.map((p) => p[1] || 0));
      const numbers = $(".numbers", card);
      C.clear(numbers);
      for (const key of ["ready", "starting", "draining", "desired"]) {
        const span = make("span", {}, key + " ");
        span.appendChild(make("b", {}, now[key] || 0));
        numbers.appendChild(span);
      }
      const decisions = state.decisions.filter((d) => d.workload === w.name);
      C.draw($(".replicas", card), Object.assign({}, win, {
        areas: ["ready", "starting", "draining"].map((k) => ({ cls: "a-" + k, points: series((s) => get(s, "workloads", w.name, k) || 0) })),
        lines: [{ cls: "s-desired", points: desired }],
        markers: decisions.map((d) => ({ t: d.t, title: `${d.from} → ${d.to}: ${d.reason}` })),
      }));
      const list = $("ol.decisions", card);
      if (list.childElementCount !== decisions.length) {
        C.clear(list);
        for (const d of decisions.slice().reverse().slice(0, 100)) {
          const item = make("li", { class: "decision", "data-to": d.to });
          item.appendChild(make("time", {}, clock(d.t)));
          item.appendChild(document.createTextNode(`${d.from} → ${d.to}: ${d.reason}`));
          list.appendChild(item);
        }
      }
    }
  }

  // --- dead letters ------------------------------------------------------------------

  function ago(t) {
    const s = Math.max(0, Math.round(Date.now() / 1000 - t));
    return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
  }

  async function refreshDlq() {
    state.dlqAt = Date.now() / 1000;
    const body = await getJSON("/v1/dlq?limit=100");
    const tbody = $("#dlq tbody");
    C.clear(tbody);
    for (const d of body.items) {
      const row = make("tr", { "data-id": d.id });
      const a = d.attributes || {};
      for (const [cls, value] of [["", d.id], ["", d.trigger], ["", ago(d.failedAt)], ["", d.attempts],
        ["", d.status === null ? "-" : d.status], ["event", `${a.type} ${a.id}`], ["", d.reason]]) {
        row.appendChild(make("td", cls ? { class: cls } : {}, value));
      }
      const cell = make("td");
      const button = make("button", { type: "button", class: "replay", "data-id": d.id }, "Replay");
      button.addEventListener("click", () => replay({ ids: [d.id] }));
      cell.appendChild(button);
      row.appendChild(cell);
      tbody.appendChild(row);
    }
    if (!body.items.length) {
      const row = make("tr", { class: "empty" });
      row.appendChild(make("td", { colspan: 8 }, "no dead letters"));
      tbody.appendChild(row);
    }
    $("#replay-all").disabled = body.items.length === 0;
    const shown = body.items.length;
    $("#dlq-count").textContent = state.dlqTotal > shown ? `showing ${shown} of ${state.dlqTotal}` : "";
  }

  async function replay(request) {
    const message = $("#dlq-message");
    try {
      const result = await getJSON("/v1/dlq/replay", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
      });
      const failed = (result.failed || []).map((f) => `${f.id} (${f.error})`);
      message.textContent = `replayed ${result.replayed.length}` +
        (result.missing.length ? `; not found: ${result.missing.join(", ")}` : "") +
        (failed.length ? `; could not replay: ${failed.join(", ")}` : "");
      message.dataset.replayed = result.replayed.join(",");
    } catch (err) {
      message.textContent = "replay failed: " + err.message;
    }
    await refreshDlq();
  }

  function dlqTotal(sample) {
    return Object.values(sample.triggers || {}).reduce((n, t) => n + (t.dlq || 0), 0);
  }

  // --- wiring ------------------------------------------------------------------------

  function render() {
    drawFlow();
    renderTriggers();
    renderWorkloads();
    const sample = last();
    if (sample) {
      $("#clock").textContent = clock(sample.t);
      const total = dlqTotal(sample);
      if (total !== state.dlqTotal || Date.now() / 1000 - state.dlqAt > DLQ_REFRESH) {
        state.dlqTotal = total;
        refreshDlq().catch((err) => { $("#dlq-message").textContent = "cannot list dead letters: " + err.message; });
      }
    }
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(() => { pending = false; render(); });
  }

  function connect() {
    const stream = new EventSource("/v1/ui/stream");
    stream.addEventListener("open", () => setStatus("live"));
    stream.addEventListener("error", () => setStatus("reconnecting"));
    stream.addEventListener("sample", (e) => {
      state.samples.push(JSON.parse(e.data));
      if (state.samples.length > KEEP) state.samples.splice(0, state.samples.length - KEEP);
      schedule();
    });
    stream.addEventListener("decision", (e) => {
      state.decisions.push(JSON.parse(e.data));
      schedule();
    });
  }

  async function start() {
    $("#replay-all").addEventListener("click", () => replay({ all: true }));
    try {
      const initial = await getJSON("/v1/ui/state");
      state.topology = initial.topology;
      state.samples = initial.samples;
      state.decisions = initial.decisions;
    } catch (err) {
      setStatus("reconnecting", "cannot load: " + err.message);
      return;
    }
    buildTriggers();
    buildWorkloads();
    render();
    connect();
    window.addEventListener("resize", schedule);
  }

  window.eventingDashboard = { state: state, refreshDlq: refreshDlq };
  start();
})();
