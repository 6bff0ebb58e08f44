// Alerts: unresolved alerts in the caller's scope, newest first, with their full advice,
// evidence and audit trail; acknowledge / assign / resolve with a comment (technicians and
// the admin); each links to its device page at the moment of the alert.

import { el } from "../dom.js";
import { alertCard } from "../alert_card.js";

const STRINGS = {
  en: {
    title: "Alerts", heading: "Unresolved alerts", count: "{n} unresolved",
    none: "Nothing needs attention.", show: "Show",
    "show.unresolved": "unresolved", "show.resolved": "resolved",
  },
  "zh-CN": {
    title: "告警", heading: "未解决的告警", count: "{n} 条未解决",
    none: "目前没有需要处理的告警。", show: "显示",
    "show.unresolved": "未解决", "show.resolved": "已解决",
  },
};

async function load(ctx, which) {
  const statuses = which === "resolved" ? ["resolved"] : ["open", "acknowledged"];
  const pages = await Promise.all(statuses.map((status) =>
    ctx.api("alerts", { query: { status, limit: 500 } })));
  return pages.flatMap((p) => p.data).sort((a, b) => b.id - a.id);
}

export default {
  route: "alerts",
  title: "title",
  strings: STRINGS,
  async render(root, ctx) {
    const { t } = ctx;
    const which = ctx.query.get("show") || "unresolved";
    const list = el("div", { id: "alert-list" });
    const count = el("span", { class: "muted", id: "alerts-count" });
    const picker = el("select", {
      id: "alerts-show",
      onchange: () => ctx.go(`#/alerts?show=${picker.value}`),
    }, ["unresolved", "resolved"].map((v) => el("option", { value: v }, t(`show.${v}`))));
    picker.value = which;
    root.append(el("section", { class: "card" },
      el("h1", {}, t("heading"), " ", count),
      el("div", { class: "controls" }, el("label", {}, t("show"), picker)),
      list));

    const draw = (alerts) => {
      count.textContent = which === "unresolved" ? t("count", { n: alerts.length }) : "";
      list.replaceChildren(...(alerts.length
        ? alerts.map((a) => alertCard(a, ctx, { onChange: refresh, showDevice: true }))
        : [el("p", { class: "muted", id: "alerts-none" }, t("none"))]));
    };
    const refresh = async () => draw(await load(ctx, which));
    await refresh();
    ctx.live.on("alert", (a) => {
      // a change on screen or a new unresolved alert: reload the list (it is small)
      if (which === "unresolved" || a.status === "resolved") refresh().catch(() => null);
    });
    ctx.live.on("poll", () => refresh().catch(() => null));
  },
};
