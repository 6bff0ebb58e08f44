// The quality report per manufacturer or per model for a chosen period: field failure and
// degradation rates against the peers with 95 % exact intervals, and the evidence. Prints
// as a report (quality.css @media print) and downloads as CSV or PDF from the same route.

import { el } from "../dom.js";
import { causeName, ciCell, shareFormat, useQualityCss } from "../quality_common.js";

const STRINGS = {
  en: {
    title: "Quality report", heading: "Field quality report",
    by: "Per", "by.manufacturer": "manufacturer", "by.model": "model",
    from: "From", to: "To", group: "Only", all: "all", show: "Show",
    print: "Print", csv: "Download CSV", pdf: "Download PDF",
    period: "Period {from} – {to} (UTC) · generated {at}",
    method: "Rates are per device-year with 95 % exact intervals (Garwood for counts, Clopper-Pearson for shares). Peers are the rest of the fleet of the same asset kinds; the rate ratio is standardised by kind, its p-value one-sided exact.",
    none: "No group in your scope has devices in service in this period.",
    "col.group": "Group", "col.devices": "Devices", "col.years": "Device-years",
    "col.degraded": "Degraded (share, 95 % CI)", "col.rate": "Degradations /device-year (95 % CI)",
    "col.peer": "Peers", "col.rr": "Rate ratio (95 % CI)", "col.p": "p",
    "col.failures": "Field failures", "col.frate": "Failures /device-year (95 % CI)",
    "col.risk": "Fleet risk", evidence: "Evidence",
    "st.none": "none", "st.weak": "weak", "st.moderate": "moderate", "st.strong": "strong",
  },
  "zh-CN": {
    title: "质量报告", heading: "现场质量报告",
    by: "按", "by.manufacturer": "制造商", "by.model": "型号",
    from: "起始", to: "截止", group: "仅看", all: "全部", show: "显示",
    print: "打印", csv: "下载 CSV", pdf: "下载 PDF",
    period: "统计期 {from} – {to} (UTC) · 生成于 {at}",
    method: "比率为每设备年，附 95% 精确置信区间 (计数用 Garwood，比例用 Clopper-Pearson)。同类为同一设备类型的其余设备；率比按设备类型标准化，p 值为单侧精确检验。",
    none: "您的范围内没有在本期在役的分组。",
    "col.group": "分组", "col.devices": "设备数", "col.years": "设备年",
    "col.degraded": "劣化 (比例, 95% CI)", "col.rate": "每设备年劣化数 (95% CI)",
    "col.peer": "同类", "col.rr": "率比 (95% CI)", "col.p": "p 值",
    "col.failures": "现场故障", "col.frate": "每设备年故障数 (95% CI)",
    "col.risk": "批量风险", evidence: "证据",
    "st.none": "无", "st.weak": "弱", "st.moderate": "中", "st.strong": "强",
  },
};

const day = (d) => d.toISOString().slice(0, 10);

export default {
  route: "report",
  title: "title",
  strings: STRINGS,
  roles: ["monitoring_point", "manufacturer", "admin"],
  async render(root, ctx) {
    useQualityCss();
    const { t, fmt, query } = ctx;
    const now = new Date();
    const by = query.get("by") === "model" ? "model" : "manufacturer";
    const to = query.get("to") || day(now);
    const from = query.get("from") || day(new Date(now.getTime() - 365 * 86400e3));
    const group = query.get("group") || "";
    const params = { by, from, to, group };

    const bySelect = el("select", { id: "report-by" },
      ["manufacturer", "model"].map((b) => el("option", { value: b }, t(`by.${b}`))));
    bySelect.value = by;
    const fromInput = el("input", { type: "date", id: "report-from", value: from });
    const toInput = el("input", { type: "date", id: "report-to", value: to });
    const apply = () => {
      const q = new URLSearchParams({ by: bySelect.value, from: fromInput.value, to: toInput.value });
      if (group && bySelect.value === by) q.set("group", group);
      ctx.go(`#/report?${q}`);
    };
    const download = (format) => {
      const q = new URLSearchParams({ ...params, format, lang: ctx.locale });
      if (!group) q.delete("group");
      return `/api/v1/reports/quality?${q}`;
    };
    root.append(el("section", { class: "card no-print" },
      el("div", { class: "controls" },
        el("label", {}, t("by"), bySelect),
        el("label", {}, t("from"), fromInput), el("label", {}, t("to"), toInput),
        el("button", { class: "primary", id: "report-show", onclick: apply }, t("show"))),
      el("div", { class: "downloads" },
        el("button", { id: "report-print", onclick: () => window.print() }, t("print")),
        el("a", { id: "report-csv", href: download("csv"), download: "" }, t("csv")),
        el("a", { id: "report-pdf", href: download("pdf"), download: "" }, t("pdf")))));

    const report = await ctx.api("reports/quality", { query: params });
    const heads = ["group", "devices", "years", "degraded", "rate", "peer", "rr", "p", "failures", "frate", "risk"];
    const numeric = new Set(heads.slice(1, -1));
    const label = (h) => t(`col.${h}`);
    const shareFmt = shareFormat(fmt);
    const rows = report.rows.map((r) => el("tr", { dataset: { group: r.group } },
      el("td", { "data-label": label("group") }, r.group,
        el("div", { class: "muted small" }, r.kinds.map((k) => t(`kind.${k}`)).join(", "))),
      el("td", { class: "num", "data-label": label("devices") }, fmt.number(r.devices)),
      el("td", { class: "num", "data-label": label("years") }, fmt.number(r.device_years, 3)),
      el("td", { class: "num", "data-label": label("degraded") }, fmt.number(r.degraded), " · ",
        ciCell(shareFmt, r.degraded_share, r.degraded_share_low, r.degraded_share_high)),
      el("td", { class: "num", "data-label": label("rate") },
        ciCell(fmt, r.degradation_rate, r.degradation_rate_low, r.degradation_rate_high)),
      el("td", { class: "num", "data-label": label("peer") }, fmt.number(r.peer_degradation_rate, 3)),
      el("td", { class: "num", "data-label": label("rr") },
        ciCell(fmt, r.degradation_rate_ratio, r.degradation_rate_ratio_low, r.degradation_rate_ratio_high)),
      el("td", { class: "num", "data-label": label("p") }, fmt.number(r.degradation_p_value, 2)),
      el("td", { class: "num", "data-label": label("failures") }, fmt.number(r.failures)),
      el("td", { class: "num", "data-label": label("frate") },
        ciCell(fmt, r.failure_rate, r.failure_rate_low, r.failure_rate_high)),
      el("td", { "data-label": label("risk") }, r.risk_strength
        ? el("span", { class: `strength strength-${r.risk_strength}` }, t(`st.${r.risk_strength}`)) : "–")));
    root.append(el("section", { class: "card", id: "report" },
      el("div", { class: "report-head" },
        el("h1", {}, `${t("heading")} · ${t(`by.${by}`)}${group ? ` · ${group}` : ""}`),
        el("p", { class: "small", id: "report-period" }, t("period", {
          from: report.period_from.slice(0, 10), to: report.period_to.slice(0, 10),
          at: fmt.dateTime(report.generated_at) })),
        el("p", { class: "muted small" }, t("method"))),
      report.rows.length
        ? el("div", { class: "scroll" }, el("table", { class: "cards figures", id: "report-table" },
            el("thead", {}, el("tr", {}, heads.map((h) =>
              el("th", { class: numeric.has(h) ? "num" : "" }, label(h))))),
            el("tbody", {}, rows)))
        : el("p", { class: "muted", id: "report-none" }, t("none")),
      report.rows.length ? el("h2", {}, t("evidence")) : null,
      el("ul", { class: "evidence-list", id: "report-evidence" }, report.rows.map((r) =>
        el("li", {}, el("strong", {}, r.group), " ",
          ctx.locale === "zh-CN" ? r.evidence_zh : r.evidence,
          r.alerts.length ? el("ul", { class: "small muted" }, r.alerts.map((a) => el("li", {},
            el("a", { href: `#/device/${encodeURIComponent(a.device_id)}` }, a.device_id),
            ` ${fmt.date(a.opened_at)} · ${causeName(t, a.cause)}: ${a.summary}`))) : null)))));
  },
};
