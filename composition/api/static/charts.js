// Plain SVG charts: a time chart (lines, reference lines, a shaded band) and a scatter.
// No chart library: two chart kinds are less code than vendoring one.
//
// timeChart(series, opts) and scatterChart(groups, opts) return an <svg> element that
// scales with its container (viewBox). Axis ticks and labels are locale-formatted through
// opts.fmt (i18n.js `fmt`). Styling is in app.css (.chart ...).

import { svg } from "./dom.js";

// The drawing's width follows the screen (a phone 400, a desktop 900 units), so text keeps
// about its size when the SVG is scaled to its card; app.js redraws when a breakpoint is
// crossed (BREAKPOINTS).
export const BREAKPOINTS = ["(max-width: 639px)", "(min-width: 1100px)"];
let W = 640, H = 280;
const L = 64, R = 16, T = 14, B = 34;
function size() {
  const [narrow, wide] = BREAKPOINTS.map((q) => window.matchMedia(q).matches);
  W = narrow ? 400 : wide ? 900 : 640;
  H = narrow ? 300 : wide ? 320 : 280;
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / Math.max(n, 1);
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function frame(opts, yTitle) {
  size();
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
                            "aria-label": opts.label || yTitle || "chart" });
  if (yTitle) root.append(svg("text", { class: "axis-title", x: 4, y: 10 }, yTitle));
  return root;
}

function yScale(values, opts) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  lo -= pad; hi += pad;
  if (opts.min !== undefined && lo < opts.min) lo = opts.min;  // e.g. leakage never below 0
  if (opts.zero && lo > 0) lo = 0;  // a rate drawn from zero, so its ratios read true
  return [lo, hi];
}

function drawYAxis(root, lo, hi, y, fmt) {
  for (const v of niceTicks(lo, hi, 5)) {
    root.append(
      svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt.number(v, 3)));
  }
  root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
              svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
}

// series: [{points: [[t_ms, value], ...], cls, label}]; opts: {fmt, yTitle, min, zero, from, to,
// refs: [{value, cls, label}], band: {from_ms, to_ms, cls, label}, markers: [{t_ms, label}]}
export function timeChart(series, opts) {
  const { fmt } = opts;
  const root = frame(opts, opts.yTitle);
  const pts = series.flatMap((s) => s.points);
  const refs = (opts.refs || []).filter((r) => Number.isFinite(r.value));
  const ts = pts.map((p) => p[0]).concat((opts.extraT || []).filter(Number.isFinite));
  if (!pts.length) {
    root.append(svg("text", { class: "tick", x: W / 2, y: H / 2, "text-anchor": "middle" },
                    opts.empty || "–"));
    return root;
  }
  const t0 = opts.from ?? Math.min(...ts), t1 = opts.to ?? Math.max(...ts);
  const [lo, hi] = yScale(pts.map((p) => p[1]).concat(refs.map((r) => r.value)), opts);
  const x = (t) => L + ((t - t0) / (t1 - t0 || 1)) * (W - L - R);
  const y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - T - B);
  drawYAxis(root, lo, hi, y, fmt);
  for (const t of niceTicks(t0, t1, 4)) {
    root.append(svg("text", { class: "tick", x: x(t), y: H - B + 16, "text-anchor": "middle" },
                    fmt.date(new Date(t))));
  }
  if (opts.band && Number.isFinite(opts.band.from_ms)) {
    const bx0 = x(Math.max(t0, opts.band.from_ms)), bx1 = x(Math.min(t1, opts.band.to_ms));
    root.append(svg("rect", { class: opts.band.cls || "band", x: Math.min(bx0, bx1), y: T,
                              width: Math.abs(bx1 - bx0), height: H - T - B },
                ));
  }
  for (const r of refs) {
    root.append(
      svg("line", { class: `ref ${r.cls || ""}`, x1: L, x2: W - R, y1: y(r.value), y2: y(r.value) }),
      svg("text", { class: `ref-label ${r.cls || ""}`, x: W - R - 4, y: y(r.value) - 4,
                    "text-anchor": "end" }, r.label));
  }
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    root.append(svg("path", { class: `series ${s.cls || ""}`, d: d.join(" ") }));
    if (s.points.length === 1 || s.dots) {
      for (const p of s.points) {
        root.append(svg("circle", { class: `dot ${s.cls || ""}`, cx: x(p[0]), cy: y(p[1]), r: 2.5 }));
      }
    }
  }
  for (const m of opts.markers || []) {
    if (!Number.isFinite(m.t_ms) || m.t_ms < t0 || m.t_ms > t1) continue;
    root.append(svg("line", { class: "marker", x1: x(m.t_ms), x2: x(m.t_ms), y1: T, y2: H - B }),
                svg("text", { class: "ref-label", x: x(m.t_ms) + 3, y: T + 10 }, m.label));
  }
  return root;
}

// groups: [{points: [[x, y], ...], cls, label}]; opts: {fmt, xTitle, yTitle, min}
export function scatterChart(groups, opts) {
  const { fmt } = opts;
  const root = frame(opts, opts.yTitle);
  const pts = groups.flatMap((g) => g.points);
  if (!pts.length) {
    root.append(svg("text", { class: "tick", x: W / 2, y: H / 2, "text-anchor": "middle" },
                    opts.empty || "–"));
    return root;
  }
  const xs = pts.map((p) => p[0]);
  const [x0, x1] = yScale(xs, { min: 0 });
  const [lo, hi] = yScale(pts.map((p) => p[1]), opts);
  const x = (v) => L + ((v - x0) / (x1 - x0 || 1)) * (W - L - R);
  const y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - T - B);
  drawYAxis(root, lo, hi, y, fmt);
  for (const v of niceTicks(x0, x1, 5)) {
    root.append(svg("text", { class: "tick", x: x(v), y: H - B + 16, "text-anchor": "middle" },
                    fmt.number(v, 3)));
  }
  if (opts.xTitle) {
    root.append(svg("text", { class: "axis-title", x: W - R, y: H - 2, "text-anchor": "end" },
                    opts.xTitle));
  }
  for (const g of groups) {
    for (const p of g.points) {
      root.append(svg("circle", { class: `dot ${g.cls || ""}`, cx: x(p[0]), cy: y(p[1]), r: 2.5 }));
    }
  }
  return root;
}
