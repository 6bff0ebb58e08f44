// The regional view: devices, open alerts and seal degradation by region (and by site where
// the caller's scope shows site names), with exact intervals; and the subscriptions through
// which this organisation receives alerts.

import { el } from "../dom.js";
import { causeName, ciCell, shareFormat, useQualityCss } from "../quality_common.js";

const STRINGS = {
  en: {
    title: "Regions", heading: "By region and site", sitesHidden: "Your scope shows regions, not site names.",
    none: "No device in your scope.", noRegion: "(no region)",
    "col.where": "Region / site", "col.devices": "Devices", "col.valves": "Valves", "col.pumps": "Pumps",
    "col.withAlerts": "With open alerts", "col.alerts": "Open alerts",
    "col.degraded": "Degraded (share, 95 % CI)", "col.rate": "Degradations /device-year (95 % CI)",
    subs: "Alert subscriptions", subsNone: "No subscription: alerts reach you only on this page.",
    "sub.channel": "Channel", "sub.target": "Target", "sub.filters": "Filters", "sub.any": "every alert in your scope",
    "sub.min": "severity ≥ {n}",
  },
  "zh-CN": {
    title: "地区", heading: "按地区与站点", sitesHidden: "您的范围显示地区，不显示站点名称。",
    none: "您的范围内没有设备。", noRegion: "(无地区)",
    "col.where": "地区 / 站点", "col.devices": "设备数", "col.valves": "阀门", "col.pumps": "泵",
    "col.withAlerts": "有未处理告警", "col.alerts": "未处理告警",
    "col.degraded": "劣化 (比例, 95% CI)", "col.rate": "每设备年劣化数 (95% CI)",
    subs: "告警订阅", subsNone: "没有订阅：告警只在本页面显示。",
    "sub.channel": "渠道", "sub.target": "目标", "sub.filters": "筛选", "sub.any": "范围内的全部告警",
    "sub.min": "严重度 ≥ {n}",
  },
};

export default {
  route: "region",
  title: "title",
  strings: STRINGS,
  // the monitoring point's view (a technician's sites are its fleet page); the API answers
  // every organisation within its scope
  roles: ["monitoring_point", "manufacturer", "admin"],
  async render(root, ctx) {
    useQualityCss();
    const { t, fmt } = ctx;
    const [regions, subs] = await Promise.all([
      ctx.api("regions"), ctx.api("subscriptions").catch(() => ({ data: [] }))]);
    const heads = ["where", "devices", "valves", "pumps", "withAlerts", "alerts", "degraded", "rate"];
    const label = (h) => t(`col.${h}`);
    const shareFmt = shareFormat(fmt);
    const rows = regions.data.map((r) => {
      const s = r.tally;
      const name = r.site === null ? (r.region || t("noRegion")) : r.site || "–";
      return el("tr", { class: r.site === null ? "total" : "site",
                        dataset: { region: r.region, site: r.site ?? "" } },
        el("td", { "data-label": label("where") }, name),
        el("td", { class: "num", "data-label": label("devices") }, fmt.number(s.devices)),
        el("td", { class: "num", "data-label": label("valves") }, fmt.number(s.valves)),
        el("td", { class: "num", "data-label": label("pumps") }, fmt.number(s.pumps)),
        el("td", { class: "num", "data-label": label("withAlerts") }, fmt.number(s.with_open_alerts)),
        el("td", { class: "num", "data-label": label("alerts") }, fmt.number(s.open_alerts)),
        el("td", { class: "num", "data-label": label("degraded") }, fmt.number(s.degraded), " · ",
          ciCell(shareFmt, s.degraded_share, s.degraded_share_low, s.degraded_share_high)),
        el("td", { class: "num", "data-label": label("rate") },
          ciCell(fmt, s.degradation_rate_per_year, s.degradation_rate_low, s.degradation_rate_high)));
    });
    root.append(el("section", { class: "card" },
      el("h1", {}, t("heading")),
      regions.sites_shown ? null : el("p", { class: "muted small" }, t("sitesHidden")),
      rows.length
        ? el("div", { class: "scroll" }, el("table", { class: "cards figures", id: "region-table" },
            el("thead", {}, el("tr", {}, heads.map((h) =>
              el("th", { class: h === "where" ? "" : "num" }, label(h))))),
            el("tbody", {}, rows)))
        : el("p", { class: "muted" }, t("none"))));

    const filters = (s) => {
      const parts = [...s.kinds.map((k) => t(`kind.${k}`)), ...s.causes.map((c) => causeName(t, c)),
                     ...s.categories.map((c) => t(`cat.${c}`))];
      if (s.min_severity > 1) parts.push(t("sub.min", { n: s.min_severity }));
      return parts.length ? parts.join(", ") : t("sub.any");
    };
    root.append(el("section", { class: "card", id: "subscriptions" },
      el("h2", {}, t("subs")),
      subs.data.length
        ? el("table", { class: "cards" },
            el("thead", {}, el("tr", {}, ["channel", "target", "filters"].map((h) =>
              el("th", {}, t(`sub.${h}`))))),
            el("tbody", {}, subs.data.map((s) => el("tr", { dataset: { id: s.id } },
              el("td", { "data-label": t("sub.channel") }, s.channel),
              el("td", { class: "wrap", "data-label": t("sub.target") }, s.target),
              el("td", { class: "wrap", "data-label": t("sub.filters") }, filters(s))))))
        : el("p", { class: "muted" }, t("subsNone"))));
  },
};
