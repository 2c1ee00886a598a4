// Small SVG charts for the dashboard: lines, stacked areas and event markers over a
// time window. No library: the page must work offline and without a build step.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) {
      node.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (value <= m * step) return m * step;
    }
    return 10 * step;
  }

  function fmt(value) {
    if (value >= 100 || Number.isInteger(value)) return String(Math.round(value));
    return value.toFixed(1);
  }

  // opts: {t0, t1, lines: [{cls, points: [[t, v]]}], areas: [{cls, points: [[t, v]]}]
  //        (stacked bottom first), markers: [{t, title}], unit}
  function draw(svg, opts) {
    const width = svg.clientWidth || 400;
    const height = svg.clientHeight || 90;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    clear(svg);
    const pad = { l: 36, r: 6, t: 6, b: 14 };
    const areas = opts.areas || [];
    const lines = opts.lines || [];
    let top = 0;
    const stacked = [];
    if (areas.length) {
      const base = areas[0].points.map(() => 0);
      for (const area of areas) {
        const lower = base.slice();
        area.points.forEach((p, i) => { base[i] += p[1] || 0; });
        stacked.push({ cls: area.cls, points: area.points, lower: lower, upper: base.slice() });
      }
      top = Math.max(top, ...base, 0);
    }
    for (const line of lines) {
      for (const p of line.points) {
        if (p[1] !== null && p[1] > top) top = p[1];
      }
    }
    const ymax = niceMax(top);
    const span = Math.max(1e-3, opts.t1 - opts.t0);
    const x = (t) => pad.l + ((t - opts.t0) / span) * (width - pad.l - pad.r);
    const y = (v) => height - pad.b - (v / ymax) * (height - pad.t - pad.b);
    el("line", { class: "axis", x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0) }, svg);
    el("line", { class: "axis", x1: pad.l, y1: pad.t, x2: pad.l, y2: y(0) }, svg);
    const unit = opts.unit || "";
    el("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, svg).textContent = fmt(ymax) + unit;
    el("text", { x: pad.l - 4, y: y(0), "text-anchor": "end" }, svg).textContent = "0";
    const minutes = Math.round(span / 60);
    el("text", { x: pad.l, y: height - 2 }, svg).textContent = minutes >= 1 ? `-${minutes}m` : `-${Math.round(span)}s`;
    el("text", { x: width - pad.r, y: height - 2, "text-anchor": "end" }, svg).textContent = "now";
    for (const area of stacked) {
      if (!area.points.length) continue;
      const upper = area.points.map((p, i) => `${x(p[0]).toFixed(1)},${y(area.upper[i]).toFixed(1)}`);
      const lower = area.points.map((p, i) => `${x(p[0]).toFixed(1)},${y(area.lower[i]).toFixed(1)}`).reverse();
      el("polygon", { class: area.cls, points: upper.concat(lower).join(" ") }, svg);
    }
    for (const line of lines) {
      const pts = line.points.filter((p) => p[1] !== null && p[1] !== undefined);
      if (!pts.length) continue;
      el("polyline", {
        class: "line " + line.cls,
        points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
      }, svg);
    }
    for (const marker of opts.markers || []) {
      if (marker.t < opts.t0) continue;
      const mark = el("line", { class: "marker", x1: x(marker.t), x2: x(marker.t), y1: pad.t, y2: y(0) }, svg);
      el("title", {}, mark).textContent = marker.title;
    }
  }

  window.Charts = { el: el, clear: clear, draw: draw };
})();
