// Shared by the monitoring point's and the manufacturer's views (risk, report, region,
// fleet by model): their stylesheet, numbers with intervals, and the ageing chart (plain
// SVG: share of devices degraded by months in service, the group against its peers).

import { BREAKPOINTS } from "./charts.js";
import { el, svg } from "./dom.js";

// the views' own rules (tables of figures, print layout of the report), loaded once
export function useQualityCss() {
  if (document.getElementById("quality-css")) return;
  document.head.append(el("link", { id: "quality-css", rel: "stylesheet",
                                    href: "/static/quality.css" }));
}

// "1.23 (0.51–2.10)": a value and its 95 % interval, locale-formatted
export function withCi(fmt, v, lo, hi, digits = 3) {
  if (v === null || v === undefined) return "–";
  const hiText = hi === null || hi === undefined ? "–" : fmt.number(hi, digits);
  if (lo === null || lo === undefined) return fmt.number(v, digits);
  return `${fmt.number(v, digits)} (${fmt.number(lo, digits)}–${hiText})`;
}

// a table cell's content: the value, and its interval on a second, smaller line
export function ciCell(fmt, v, lo, hi, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (lo === null || lo === undefined) return fmt.number(v, digits);
  const hiText = hi === null || hi === undefined ? "–" : fmt.number(hi, digits);
  return [fmt.number(v, digits),
          el("div", { class: "ci" }, `${fmt.number(lo, digits)}–${hiText}`)];
}

export const shareFormat = (fmt) => ({ number: (v) => pct(fmt, v) });

// a cause's name in the page's language, or the cause itself when it has none
export function causeName(t, cause) {
  const key = `cause.${cause}`;
  const text = t(key);
  return text === key ? cause.replace(/_/g, " ") : text;
}

export function pct(fmt, v) {
  return v === null || v === undefined ? "–" : fmt.percent(v);
}

const L = 52, R = 16, T = 14, B = 36;

// ageing: {months, group: [{month, share, at_risk}], peers: [...]} from the API;
// labels: {group, peers, x, y, empty}; full: the chart spans the page (else a card of
// two): the drawing's width follows the screen like charts.js, so text keeps its size
export function ageingChart(ageing, fmt, labels, { full = true } = {}) {
  const [narrow, wide] = BREAKPOINTS.map((q) => window.matchMedia(q).matches);
  const W = narrow ? 400 : wide && full ? 900 : 640;
  const H = narrow ? 280 : wide && full ? 300 : 260;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart ageing", role: "img",
                            "aria-label": labels.y });
  const series = [["group", ageing.group, "series"], ["peers", ageing.peers, "series b"]];
  const shares = series.flatMap(([, pts]) => pts.map((p) => p.share)).filter(Number.isFinite);
  if (!shares.length || ageing.months < 1) {
    root.append(svg("text", { class: "tick", x: W / 2, y: H / 2, "text-anchor": "middle" },
                    labels.empty));
    return root;
  }
  const top = [0.05, 0.1, 0.2, 0.25, 0.4, 0.5, 0.6, 0.8, 1].find((v) => v >= Math.max(...shares) * 1.1) || 1;
  const x = (m) => L + (m / ageing.months) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
                svg("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" },
                    fmt.percent(v)));
  }
  const step = Math.max(1, Math.ceil(ageing.months / 8));
  for (let m = 0; m <= ageing.months; m += step) {
    root.append(svg("text", { class: "tick", x: x(m), y: H - B + 16, "text-anchor": "middle" },
                    fmt.number(m)));
  }
  root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
              svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
              svg("text", { class: "axis-title", x: 4, y: 10 }, labels.y),
              svg("text", { class: "axis-title", x: W - R, y: H - 2, "text-anchor": "end" },
                  labels.x));
  for (const [name, points, cls] of series) {
    // a Kaplan-Meier curve is a step function: hold each share until the next month
    const known = points.filter((p) => Number.isFinite(p.share));
    if (!known.length) continue;
    const d = known.map((p, i) => {
      const here = `${x(p.month).toFixed(1)},${y(p.share).toFixed(1)}`;
      if (!i) return `M${here}`;
      return `H${x(p.month).toFixed(1)} V${y(p.share).toFixed(1)}`;
    });
    root.append(svg("path", { class: `${cls} ${name}`, d: d.join(" "),
                              "data-series": name, "data-points": String(known.length) }));
  }
  return root;
}

export function legend(items) {
  return el("div", { class: "legend" },
    items.map(([cls, text]) => el("span", {}, el("i", { class: cls }), text)));
}
