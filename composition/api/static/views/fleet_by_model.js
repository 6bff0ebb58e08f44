// A manufacturer's fleet in the field: by model and batch, where installed, how each
// model's seals age against its peers, the open alerts on its products, and its
// provisioning uploads with their per-row results.

import { el } from "../dom.js";
import { alertCard } from "../alert_card.js";
import { ageingChart, ciCell, legend, shareFormat, useQualityCss, withCi } from "../quality_common.js";

const ALERTS_SHOWN = 5;
const STRINGS = {
  en: {
    title: "Fleet by model", heading: "Fleet by model and batch", total: "{n} devices in the field",
    none: "No device in your scope.", noRegion: "(no region)",
    regions: "Where installed", kinds: "Kinds", risk: "risk detail",
    "col.batch": "Batch", "col.devices": "Devices", "col.regions": "Regions",
    "col.withAlerts": "With open alerts", "col.degraded": "Degraded (share, 95 % CI)",
    "col.rate": "Degradations /device-year (95 % CI)",
    "ag.group": "this model", "ag.peers": "peers (other models, same kind)",
    "ag.x": "months in service", "ag.y": "share degraded (Kaplan-Meier)", "ag.empty": "not enough service time yet",
    alerts: "Open alerts on its products ({n})", alertsNone: "No open alert.", alertsAll: "Show all {n}",
    uploads: "Provisioning uploads", uploadsNone: "No upload yet.",
    "up.id": "Upload", "up.at": "When", "up.format": "File", "up.rows": "Rows",
    "up.created": "Created", "up.updated": "Updated", "up.unchanged": "Unchanged", "up.rejected": "Rejected",
    "up.show": "rows", rowsHeading: "Upload #{id}: each row",
    "row.line": "Line", "row.device": "Device", "row.status": "Result", "row.reason": "Why",
    "row.created": "created", "row.updated": "updated", "row.unchanged": "unchanged", "row.rejected": "rejected",
  },
  "zh-CN": {
    title: "按型号", heading: "按型号与批次的在役设备", total: "在役设备 {n} 台",
    none: "您的范围内没有设备。", noRegion: "(无地区)",
    regions: "安装地区", kinds: "类型", risk: "风险详情",
    "col.batch": "批次", "col.devices": "设备数", "col.regions": "地区",
    "col.withAlerts": "有未处理告警", "col.degraded": "劣化 (比例, 95% CI)",
    "col.rate": "每设备年劣化数 (95% CI)",
    "ag.group": "本型号", "ag.peers": "同类 (同类型其他型号)",
    "ag.x": "在役月数", "ag.y": "劣化比例 (Kaplan-Meier)", "ag.empty": "在役时间尚不足",
    alerts: "产品的未处理告警 ({n})", alertsNone: "没有未处理告警。", alertsAll: "显示全部 {n} 条",
    uploads: "批量导入记录", uploadsNone: "尚无导入。",
    "up.id": "导入", "up.at": "时间", "up.format": "文件", "up.rows": "行数",
    "up.created": "新建", "up.updated": "更新", "up.unchanged": "未变", "up.rejected": "拒绝",
    "up.show": "逐行", rowsHeading: "导入 #{id}：逐行结果",
    "row.line": "行", "row.device": "设备", "row.status": "结果", "row.reason": "原因",
    "row.created": "新建", "row.updated": "更新", "row.unchanged": "未变", "row.rejected": "拒绝",
  },
};

function regionsText(t, fmt, regions) {
  return Object.entries(regions).map(([r, n]) => `${r || t("noRegion")} ${fmt.number(n)}`).join(", ");
}

function modelCard(m, ctx) {
  const { t, fmt } = ctx;
  const s = m.tally;
  const shareFmt = shareFormat(fmt);
  const heads = ["batch", "devices", "regions", "withAlerts", "degraded", "rate"];
  const label = (h) => t(`col.${h}`);
  return el("section", { class: "card model-card", dataset: { model: m.model } },
    el("h2", {}, m.model, el("span", { class: "muted small" },
      `${m.kinds.map((k) => t(`kind.${k}`)).join(", ")} · ${fmt.number(s.devices)}`),
      el("a", { class: "small", href: `#/risk/model/${encodeURIComponent(m.model)}` }, t("risk"))),
    el("dl", { class: "kv" },
      el("dt", {}, t("regions")), el("dd", {}, regionsText(t, fmt, s.regions)),
      el("dt", {}, label("degraded")), el("dd", {}, `${fmt.number(s.degraded)} · ${
        withCi(shareFmt, s.degraded_share, s.degraded_share_low, s.degraded_share_high)}`),
      el("dt", {}, label("rate")), el("dd", {},
        withCi(fmt, s.degradation_rate_per_year, s.degradation_rate_low, s.degradation_rate_high))),
    ageingChart(m.ageing, fmt, { y: t("ag.y"), x: t("ag.x"), empty: t("ag.empty") }, { full: false }),
    legend([["group", t("ag.group")], ["peers", t("ag.peers")]]),
    el("div", { class: "scroll" }, el("table", { class: "cards figures batches" },
      el("thead", {}, el("tr", {}, heads.map((h) =>
        el("th", { class: ["batch", "regions"].includes(h) ? "" : "num" }, label(h))))),
      el("tbody", {}, m.batches.map((b) => {
        const href = `#/risk/batch/${encodeURIComponent(b.batch)}`;
        const bt = b.tally;
        return el("tr", { class: b.batch ? "pick" : "", dataset: { batch: b.batch },
                          onclick: () => b.batch && ctx.go(href) },
          el("td", { "data-label": label("batch") }, b.batch ? el("a", { href }, b.batch) : "–"),
          el("td", { class: "num", "data-label": label("devices") }, fmt.number(bt.devices)),
          el("td", { "data-label": label("regions") }, regionsText(t, fmt, bt.regions)),
          el("td", { class: "num", "data-label": label("withAlerts") }, fmt.number(bt.with_open_alerts)),
          el("td", { class: "num", "data-label": label("degraded") }, fmt.number(bt.degraded), " · ",
            ciCell(shareFmt, bt.degraded_share, bt.degraded_share_low, bt.degraded_share_high)),
          el("td", { class: "num", "data-label": label("rate") },
            ciCell(fmt, bt.degradation_rate_per_year, bt.degradation_rate_low, bt.degradation_rate_high)));
      })))));
}

async function uploadsCard(ctx) {
  const { t, fmt } = ctx;
  const uploads = await ctx.api("provisioning/uploads", { query: { limit: 50 } });
  const rowsBox = el("div", { id: "upload-rows" });
  const showRows = async (u) => {
    const detail = await ctx.api(`provisioning/uploads/${u.id}`, { query: { limit: 1000 } });
    const heads = ["line", "device", "status", "reason"];
    rowsBox.replaceChildren(el("h2", {}, t("rowsHeading", { id: u.id })),
      el("div", { class: "scroll" }, el("table", { class: "cards", id: "upload-row-table" },
        el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, t(`row.${h}`))))),
        el("tbody", {}, detail.rows.map((r) => el("tr", { dataset: { status: r.status } },
          el("td", { "data-label": t("row.line") }, fmt.number(r.line)),
          el("td", { "data-label": t("row.device") }, r.device_id || "–"),
          el("td", { class: `row-status-${r.status}`, "data-label": t("row.status") }, t(`row.${r.status}`)),
          el("td", { class: "wrap", "data-label": t("row.reason") }, r.reason)))))));
  };
  const heads = ["id", "at", "format", "rows", "created", "updated", "unchanged", "rejected"];
  return el("section", { class: "card", id: "uploads" },
    el("h2", {}, t("uploads")),
    uploads.data.length
      ? el("div", { class: "scroll" }, el("table", { class: "cards", id: "upload-table" },
          el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, t(`up.${h}`))), el("th", {}))),
          el("tbody", {}, uploads.data.map((u) => el("tr", { class: "pick", dataset: { id: u.id },
                                                           onclick: () => showRows(u) },
            el("td", { "data-label": t("up.id") }, `#${u.id}`),
            el("td", { "data-label": t("up.at") }, fmt.dateTime(u.created_at)),
            el("td", { "data-label": t("up.format") }, u.file_format),
            ...["rows", "created", "updated", "unchanged", "rejected"].map((k) =>
              el("td", { class: `num${k === "rejected" && u.rejected ? " error" : ""}`,
                         "data-label": t(`up.${k}`) }, fmt.number(u[k]))),
            el("td", {}, el("button", { class: "show-rows" }, t("up.show"))))))))
      : el("p", { class: "muted" }, t("uploadsNone")),
    rowsBox);
}

export default {
  route: "fleet-by-model",
  title: "title",
  strings: STRINGS,
  roles: ["manufacturer", "monitoring_point", "admin"],
  async render(root, ctx) {
    useQualityCss();
    const { t, fmt } = ctx;
    const [fleet, open] = await Promise.all([
      ctx.api("fleet/models"), ctx.api("alerts", { query: { status: "open", limit: 200 } })]);
    root.append(el("section", { class: "card" },
      el("h1", {}, t("heading")),
      el("p", { class: "muted", id: "fleet-total" }, fleet.data.length
        ? `${t("total", { n: fleet.tally.devices })} · ${regionsText(t, fmt, fleet.tally.regions)}`
        : t("none"))));
    root.append(el("div", { class: "grid two", id: "models" }, fleet.data.map((m) => modelCard(m, ctx))));
    // device alerts only: a fleet risk alert's subject is a group, shown on the risk page
    const refresh = async () => {
      const fresh = await ctx.api("alerts", { query: { status: "open", limit: 200 } });
      drawAlerts(fresh.data);
    };
    const list = el("div", { id: "product-alerts" });
    const heading = el("h2", {});
    const more = el("button", { id: "alerts-more", hidden: true });
    let showAll = false;
    const drawAlerts = (alerts) => {
      heading.textContent = t("alerts", { n: alerts.length });
      // the newest few first: a long list would push the uploads off the screen
      const shown = showAll ? alerts : alerts.slice(0, ALERTS_SHOWN);
      list.replaceChildren(...(alerts.length
        ? shown.map((a) => alertCard(a, ctx, { onChange: refresh, showDevice: true }))
        : [el("p", { class: "muted" }, t("alertsNone"))]));
      more.hidden = shown.length >= alerts.length;
      more.textContent = t("alertsAll", { n: alerts.length });
      more.onclick = () => { showAll = true; drawAlerts(alerts); };
    };
    drawAlerts(open.data);
    root.append(el("section", { class: "card" }, heading, list, more));
    if (["manufacturer", "admin"].includes(ctx.who.org_kind)) root.append(await uploadsCard(ctx));
    ctx.live.on("alert", () => refresh().catch(() => null));
  },
};
