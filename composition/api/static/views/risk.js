// Fleet risk as a page (the monitoring point's, and the manufacturer's for its own groups):
// batches, models, manufacturers and regions against their peers with the evidence, the
// rate ratio and its interval. #/risk/<dimension>/<group> opens one group: its evidence,
// how its seals age against its peers, and the devices behind it (each opens its page).

import { el } from "../dom.js";
import { ageingChart, ciCell, legend, shareFormat, useQualityCss, withCi } from "../quality_common.js";

const DIMENSIONS = ["batch", "model", "manufacturer", "region"];
const STRINGS = {
  en: {
    title: "Fleet risk", heading: "Fleet risk: groups against their peers",
    none: "No group in your scope.", notYet: "No fleet risk evaluated yet: it appears once detection has run.",
    dimension: "Group by", all: "all", flagged: "flagged only", evaluated: "evaluated {at}",
    "dim.batch": "batch", "dim.model": "model", "dim.manufacturer": "manufacturer", "dim.region": "region",
    "col.group": "Group", "col.devices": "Devices", "col.events": "Seal events",
    "col.rate": "Rate /device-year", "col.peer": "Peers", "col.rr": "Rate ratio (95 % CI)",
    "col.q": "q (FDR)", "col.strength": "Evidence", "col.text": "In words",
    "st.none": "none", "st.weak": "weak", "st.moderate": "moderate", "st.strong": "strong",
    back: "← all groups", ageing: "How its seals age", devicesHeading: "Devices behind it ({n})",
    "ag.group": "this {dim}", "ag.peers": "peers (rest of the fleet, same kind)",
    "ag.x": "months in service", "ag.y": "share degraded (Kaplan-Meier)", "ag.empty": "not enough service time yet",
    evidence: "Evidence", noRow: "Not in the risk table (too few devices observed, or not evaluated yet).",
    "dev.device": "Device", "dev.model": "Model", "dev.batch": "Batch", "dev.region": "Region",
    "dev.degraded": "Degraded", "dev.failures": "Failures", "dev.alerts": "Open alerts",
    "dev.months": "Months in service",
    "kv.degradedShare": "share degraded (95 % CI)", "kv.rate": "degradations /device-year (95 % CI)",
    "kv.rr": "rate ratio (95 % CI)", "kv.expected": "expected at peer rate", "kv.pq": "p / q",
    "kv.growth": "seal signal growth vs peers (95 % CI)", "kv.near": "near their class limit",
    "kv.regions": "where installed",
    report: "Quality report for this {dim}",
  },
  "zh-CN": {
    title: "批量风险", heading: "批量风险：各组与同类对比",
    none: "您的范围内没有分组。", notYet: "尚未计算批量风险：检测运行后显示。",
    dimension: "分组方式", all: "全部", flagged: "仅显示已标记", evaluated: "计算于 {at}",
    "dim.batch": "批次", "dim.model": "型号", "dim.manufacturer": "制造商", "dim.region": "地区",
    "col.group": "分组", "col.devices": "设备数", "col.events": "密封事件",
    "col.rate": "每设备年事件率", "col.peer": "同类", "col.rr": "率比 (95% 置信区间)",
    "col.q": "q 值 (FDR)", "col.strength": "证据强度", "col.text": "说明",
    "st.none": "无", "st.weak": "弱", "st.moderate": "中", "st.strong": "强",
    back: "← 全部分组", ageing: "密封老化曲线", devicesHeading: "该组设备 ({n})",
    "ag.group": "本{dim}", "ag.peers": "同类 (同类型其余设备)",
    "ag.x": "在役月数", "ag.y": "劣化比例 (Kaplan-Meier)", "ag.empty": "在役时间尚不足",
    evidence: "证据", noRow: "不在风险表中 (观测设备太少或尚未计算)。",
    "dev.device": "设备", "dev.model": "型号", "dev.batch": "批次", "dev.region": "地区",
    "dev.degraded": "劣化时间", "dev.failures": "故障", "dev.alerts": "未处理告警",
    "dev.months": "在役月数",
    "kv.degradedShare": "劣化比例 (95% 置信区间)", "kv.rate": "每设备年劣化数 (95% 置信区间)",
    "kv.rr": "率比 (95% 置信区间)", "kv.expected": "按同类率预期", "kv.pq": "p / q",
    "kv.growth": "密封信号增长与同类之比 (95% 置信区间)", "kv.near": "接近等级限值",
    "kv.regions": "安装地区",
    report: "该{dim}的质量报告",
  },
};

function strength(t, s) {
  return el("span", { class: `strength strength-${s}` }, t(`st.${s}`));
}

function rrText(ctx, r) {
  if (r.rate_ratio === null || r.rate_ratio === undefined) return "–";
  return withCi(ctx.fmt, r.rate_ratio, r.rate_ratio_low, r.rate_ratio_high, 3);
}

async function list(root, ctx) {
  const { t, fmt, query } = ctx;
  const dim = query.get("dimension") || "";
  const flaggedOnly = query.get("flagged") === "1";
  const go = (patch) => {
    const q = new URLSearchParams({ dimension: dim, flagged: flaggedOnly ? "1" : "", ...patch });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    ctx.go(`#/risk${[...q].length ? `?${q}` : ""}`);
  };
  const dimSelect = el("select", { id: "risk-dimension", onchange: () => go({ dimension: dimSelect.value }) },
    el("option", { value: "" }, t("all")),
    DIMENSIONS.map((d) => el("option", { value: d }, t(`dim.${d}`))));
  dimSelect.value = dim;
  const flaggedBox = el("input", { type: "checkbox", id: "risk-flagged", checked: flaggedOnly,
                                   onchange: () => go({ flagged: flaggedBox.checked ? "1" : "" }) });
  const note = el("p", { class: "muted small", id: "risk-note" });
  const body = el("tbody", { id: "risk-rows" });
  const heads = ["group", "devices", "events", "rate", "peer", "rr", "q", "strength", "text"];
  const numeric = new Set(["devices", "events", "rate", "peer", "rr", "q"]);
  root.append(el("section", { class: "card" },
    el("h1", {}, t("heading")),
    el("div", { class: "controls" },
      el("label", {}, t("dimension"), dimSelect), el("label", {}, flaggedBox, t("flagged"))),
    note,
    el("div", { class: "scroll" }, el("table", { class: "cards figures", id: "risk-table" },
      el("thead", {}, el("tr", {}, heads.map((h) =>
        el("th", { class: numeric.has(h) ? "num" : "" }, t(`col.${h}`))))),
      body))));
  let table;
  try {
    table = await ctx.api("risk", { query: { dimension: dim, flagged: flaggedOnly ? "true" : "",
                                            limit: 2000 } });
  } catch (e) {
    if (e.status !== 503) throw e;
    note.textContent = t("notYet");
    return;
  }
  // the words column only once the table carries them (fleet risk's evidence_text)
  if (!table.data.some((r) => r.evidence_text)) {
    root.querySelector("#risk-table thead tr").lastChild.remove();
  }
  const words = table.data.some((r) => r.evidence_text);
  note.textContent = table.evaluated_at ? t("evaluated", { at: fmt.dateTime(table.evaluated_at) }) : "";
  if (!table.data.length) note.textContent = t("none");
  const label = (h) => t(`col.${h}`);
  body.replaceChildren(...table.data.map((r) => {
    const href = `#/risk/${r.dimension}/${encodeURIComponent(r.group)}`;
    return el("tr", { class: `pick${r.flagged ? " flagged" : ""}`, dataset: { key: r.key },
                      onclick: () => ctx.go(href) },
      el("td", { "data-label": label("group") }, el("a", { href }, r.group),
        el("div", { class: "muted small" }, t(`dim.${r.dimension}`))),
      el("td", { class: "num", "data-label": label("devices") }, fmt.number(r.devices)),
      el("td", { class: "num", "data-label": label("events") }, fmt.number(r.events)),
      el("td", { class: "num", "data-label": label("rate") }, fmt.number(r.rate_per_year, 3)),
      el("td", { class: "num", "data-label": label("peer") }, fmt.number(r.peer_rate_per_year, 3)),
      el("td", { class: "num", "data-label": label("rr") }, r.rate_ratio === null ? "–"
        : ciCell(fmt, r.rate_ratio, r.rate_ratio_low, r.rate_ratio_high)),
      el("td", { class: "num", "data-label": label("q") }, fmt.number(r.q_value, 2)),
      el("td", { "data-label": label("strength") }, strength(t, r.strength)),
      words ? el("td", { class: "wrap small", "data-label": label("text") }, r.evidence_text) : null);
  }));
}

async function detail(root, ctx) {
  const { t, fmt } = ctx;
  const [dim, group] = ctx.params;
  const g = await ctx.api(`risk/groups/${encodeURIComponent(dim)}/${encodeURIComponent(group)}`,
                          { query: { limit: 2000 } });
  const r = g.row;
  const tally = g.tally;
  const kv = [
    [t("kv.degradedShare"), `${fmt.number(tally.degraded)} / ${fmt.number(tally.devices)} · ${
      withCi(shareFormat(fmt), tally.degraded_share, tally.degraded_share_low,
             tally.degraded_share_high)}`],
    [t("kv.rate"), withCi(fmt, tally.degradation_rate_per_year, tally.degradation_rate_low,
                          tally.degradation_rate_high)],
    [t("kv.regions"), Object.entries(tally.regions).map(([k, n]) => `${k || "–"} ${fmt.number(n)}`).join(", ")],
  ];
  if (r) {
    kv.push([t("kv.rr"), rrText(ctx, r)],
            [t("kv.expected"), `${fmt.number(r.events)} / ${fmt.number(r.expected_events, 3)}`],
            [t("kv.pq"), `${fmt.number(r.p_value, 2)} / ${fmt.number(r.q_value, 2)}`]);
    if (r.growth_ratio !== undefined && r.growth_ratio !== null) {
      kv.push([t("kv.growth"), withCi(fmt, r.growth_ratio, r.growth_ratio_low, r.growth_ratio_high)]);
    }
    if (r.near_limit) kv.push([t("kv.near"), fmt.number(r.near_limit)]);
  }
  const dimName = t(`dim.${dim}`);
  const reportBy = dim === "model" || dim === "manufacturer" ? dim : null;
  root.append(
    el("p", { class: "no-print" }, el("a", { href: "#/risk", id: "risk-back" }, t("back"))),
    el("section", { class: "card", id: "risk-detail" },
      el("h1", {}, `${dimName} ${group} `, r ? strength(t, r.strength) : null),
      el("p", { class: "evidence", id: "risk-evidence" }, r ? (r.evidence_text || "") : t("noRow")),
      el("dl", { class: "kv" }, kv.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      reportBy ? el("p", {}, el("a", { href: `#/report?by=${reportBy}&group=${encodeURIComponent(group)}` },
                                 t("report", { dim: dimName }))) : null),
    el("section", { class: "card" },
      el("h2", {}, t("ageing")),
      ageingChart(g.ageing, fmt, { y: t("ag.y"), x: t("ag.x"), empty: t("ag.empty") }),
      legend([["group", t("ag.group", { dim: dimName })], ["peers", t("ag.peers")]])),
  );
  const heads = ["device", "model", "batch", "region", "degraded", "failures", "alerts", "months"];
  const label = (h) => t(`dev.${h}`);
  root.append(el("section", { class: "card" },
    el("h2", {}, t("devicesHeading", { n: tally.devices })),
    el("div", { class: "scroll" }, el("table", { class: "cards", id: "group-devices" },
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, label(h))))),
      el("tbody", {}, g.devices.map((d) => {
        const href = `#/device/${encodeURIComponent(d.device_id)}`;
        return el("tr", { class: "pick", dataset: { id: d.device_id }, onclick: () => ctx.go(href) },
          el("td", { "data-label": label("device") }, el("a", { href }, d.device_id)),
          el("td", { "data-label": label("model") }, `${d.manufacturer} ${d.model}`),
          el("td", { "data-label": label("batch") }, d.batch || "–"),
          el("td", { "data-label": label("region") }, d.region || "–"),
          el("td", { "data-label": label("degraded") }, d.first_degraded_at ? fmt.date(d.first_degraded_at) : "–"),
          el("td", { class: "num", "data-label": label("failures") }, d.failures || ""),
          el("td", { class: "num", "data-label": label("alerts") }, d.open_alerts || ""),
          el("td", { class: "num", "data-label": label("months") }, fmt.number(d.months_in_service, 2)));
      }))))));
}

export default {
  route: "risk",
  title: "title",
  strings: STRINGS,
  roles: ["monitoring_point", "manufacturer", "admin"],
  async render(root, ctx) {
    useQualityCss();
    if (ctx.params.length >= 2) return detail(root, ctx);
    return list(root, ctx);
  },
};
