// One device: status and vitals, identity, seal health (leakage against its commissioning
// baseline and its ISO 5208 class limit, with the trend and the remaining time to the limit),
// actuation (stroke time and torque against ΔP) or pump seal trends, its commands (queue a
// stroke test, see its state) and its alert history with each verdict's evidence.
// #/device/<id>?at=<unix s> centres the charts on a moment (an alert's).

import { el } from "../dom.js";
import { timeChart, scatterChart } from "../charts.js";
import { alertCard, UNITS } from "../alert_card.js";

const STRINGS = {
  en: {
    title: "Device", back: "← Fleet", range: "Span", "days": "{n} days",
    identity: "Identity", kind: "Kind", manufacturer: "Manufacturer", model: "Model",
    dn: "Nominal size", pn: "Pressure class", class: "ISO 5208 leakage class",
    seat: "Seat material", batch: "Batch", firmware: "Firmware", site: "Site", region: "Region",
    registered: "Registered", lastSeen: "Last seen", battery: "Battery", radio: "Radio",
    seal: "Seal health", "seal.leak_at_test": "Seat leakage at the ISO 5208 test ΔP ({dp} kPa)",
    "seal.leak_coefficient": "Seat leak coefficient (no PN: not scaled to the test pressure)",
    "seal.baseline": "commissioning baseline", "seal.baseline.first_readings": "baseline (first readings shown)",
    "seal.limit": "class {cls} limit, DN{dn}", "seal.trend": "trend to the limit",
    "seal.readings": "{n} readings of a closed valve under pressure",
    "seal.rul": "Remaining time to the class limit: {v} (late bound {late}), around {eta}.",
    "seal.rulNone": "No significant upward trend: no remaining time to the limit.",
    "seal.rulUnknown": "Remaining time to the limit: not known yet (too few trend points or no class limit).",
    "seal.ratio": "Now {v}× its commissioning baseline; grows {g}× per 30 days.",
    "seal.noLimit": "No class limit: the device has no leakage class, DN or PN in the registry.",
    "seal.none": "no qualifying readings in this span",
    actuation: "Actuation against ΔP", "act.stroke": "Stroke time (s)", "act.torque": "Torque (N·m)",
    "act.dp": "ΔP (kPa)", "act.older": "older", "act.newer": "newest half", "act.n": "{n} strokes",
    pump: "Pump seal trends", "pump.leak_mm3s": "Seal-chamber leakage (mm³/s)",
    "pump.temp_c": "Casing temperature (°C)", "pump.vib_mms": "Vibration (mm/s)",
    verdicts: "Detector verdicts", commands: "Commands", "cmd.stroke": "Queue a stroke test",
    "cmd.none": "No command queued.", "cmd.unavailable": "Commands are not available on this server.",
    "cmd.stroke_test": "stroke test", "cmd.time_sync": "time sync",
    "cmd.state.requested": "requested", "cmd.state.pending": "pending", "cmd.state.sent": "sent", "cmd.state.delivered": "delivered",
    "cmd.state.succeeded": "succeeded", "cmd.state.failed": "failed", "cmd.state.expired": "expired",
    alerts: "Alert history", "alerts.none": "No alert so far.", moment: "alert",
    noRaw: "Charts need raw readings, which this remit does not grant.",
  },
  "zh-CN": {
    title: "设备", back: "← 设备总览", range: "时间范围", "days": "{n} 天",
    identity: "设备信息", kind: "类型", manufacturer: "制造商", model: "型号",
    dn: "公称通径", pn: "压力等级", class: "ISO 5208 泄漏等级",
    seat: "阀座材料", batch: "批次", firmware: "固件", site: "站点", region: "地区",
    registered: "登记时间", lastSeen: "最近上报", battery: "电池", radio: "信号",
    seal: "密封健康", "seal.leak_at_test": "ISO 5208 试验压差（{dp} kPa）下的阀座泄漏",
    "seal.leak_coefficient": "阀座泄漏系数（无压力等级：未换算到试验压力）",
    "seal.baseline": "投运基线", "seal.baseline.first_readings": "基线（所示最早读数）",
    "seal.limit": "{cls} 级限值，DN{dn}", "seal.trend": "趋势外推至限值",
    "seal.readings": "{n} 个关阀带压读数",
    "seal.rul": "距等级限值剩余时间：{v}（保守估计 {late}），约在 {eta}。",
    "seal.rulNone": "无显著上升趋势：不外推剩余时间。",
    "seal.rulUnknown": "距限值剩余时间：暂不可知（趋势点不足或无等级限值）。",
    "seal.ratio": "当前为投运基线的 {v} 倍；每 30 天增长 {g} 倍。",
    "seal.noLimit": "无等级限值：登记信息缺少泄漏等级、通径或压力等级。",
    "seal.none": "此时间范围内没有可用读数",
    actuation: "执行机构与压差", "act.stroke": "行程时间（s）", "act.torque": "扭矩（N·m）",
    "act.dp": "压差（kPa）", "act.older": "较早", "act.newer": "较新的一半", "act.n": "{n} 次动作",
    pump: "泵密封趋势", "pump.leak_mm3s": "密封腔泄漏（mm³/s）",
    "pump.temp_c": "壳体温度（°C）", "pump.vib_mms": "振动（mm/s）",
    verdicts: "检测结论", commands: "指令", "cmd.stroke": "下发行程测试",
    "cmd.none": "暂无指令。", "cmd.unavailable": "此服务器不支持指令。",
    "cmd.stroke_test": "行程测试", "cmd.time_sync": "校时",
    "cmd.state.requested": "已提交", "cmd.state.pending": "待发送", "cmd.state.sent": "已发送", "cmd.state.delivered": "已送达",
    "cmd.state.succeeded": "成功", "cmd.state.failed": "失败", "cmd.state.expired": "已过期",
    alerts: "告警记录", "alerts.none": "暂无告警。", moment: "告警",
    noRaw: "图表需要原始读数，当前授权不包含。",
  },
};

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function sealCard(seal, ctx, atMs) {
  const { t, fmt } = ctx;
  const title = seal.quantity === "leak_at_test"
    ? t("seal.leak_at_test", { dp: fmt.number(seal.test_dp_kpa, 3) }) : t("seal.leak_coefficient");
  const refs = [];
  if (Number.isFinite(seal.baseline)) {
    refs.push({ value: seal.baseline, cls: "baseline",
      label: `${seal.baseline_source === "detector" ? t("seal.baseline") : t("seal.baseline.first_readings")} ${fmt.unit(seal.baseline, seal.unit, 3)}` });
  }
  if (Number.isFinite(seal.limit)) {
    refs.push({ value: seal.limit, cls: "limit",
      label: `${t("seal.limit", { cls: seal.leakage_class, dn: seal.dn })} ${fmt.unit(seal.limit, seal.unit, 3)}` });
  }
  const series = [{ points: seal.points, cls: "", dots: seal.points.length < 60 }];
  const last = seal.points[seal.points.length - 1];
  let band = null;
  const extraT = [];
  if (last && Number.isFinite(seal.limit_eta_s) && Number.isFinite(seal.limit)) {
    const eta = seal.limit_eta_s * 1000;
    series.push({ points: [[last[0], seal.current ?? last[1]], [eta, seal.limit]], cls: "trend" });
    extraT.push(eta);
    if (Number.isFinite(seal.rul_late_s) && Number.isFinite(seal.rul_s)) {
      band = { from_ms: eta, to_ms: eta + (seal.rul_late_s - seal.rul_s) * 1000, cls: "band" };
      extraT.push(band.to_ms);
    }
  }
  const chart = timeChart(series, {
    fmt, yTitle: `${title} · ${seal.unit}`, min: 0, zero: true, refs, band, extraT,
    markers: atMs ? [{ t_ms: atMs, label: t("moment") }] : [],
    empty: t("seal.none"), label: title,
  });
  chart.id = "seal-chart";
  const lines = [];
  if (Number.isFinite(seal.rul_s)) {
    lines.push(t("seal.rul", { v: fmt.duration(seal.rul_s), late: fmt.duration(seal.rul_late_s),
                               eta: fmt.date(seal.limit_eta_s) }));
  } else if (seal.trend === "no significant upward trend") lines.push(t("seal.rulNone"));
  else lines.push(t("seal.rulUnknown"));
  if (Number.isFinite(seal.ratio)) {
    lines.push(t("seal.ratio", { v: fmt.number(seal.ratio, 3), g: fmt.number(seal.growth_per_30d, 3) }));
  }
  if (!Number.isFinite(seal.limit)) lines.push(t("seal.noLimit"));
  return el("section", { class: "card wide", id: "seal" },
    el("h2", {}, t("seal")),
    el("div", { class: "legend" },
      el("span", {}, el("i"), t("seal.readings", { n: seal.readings })),
      Number.isFinite(seal.baseline) && el("span", {}, el("i", { class: "baseline" }), t("seal.baseline")),
      Number.isFinite(seal.limit) && el("span", {}, el("i", { class: "limit" }), t("seal.limit", { cls: seal.leakage_class, dn: seal.dn })),
      series.length > 1 && el("span", {}, el("i", { class: "trend" }), t("seal.trend"))),
    chart,
    el("p", { id: "seal-rul" }, lines.join(" ")));
}

function actuationCard(a, ctx) {
  const { t, fmt } = ctx;
  const half = Math.floor(a.t_ms.length / 2);
  const groups = (ys) => [
    { points: a.dp_kpa.map((x, i) => [x, ys[i]]).slice(0, half).filter((p) => p[1] !== null), cls: "old" },
    { points: a.dp_kpa.map((x, i) => [x, ys[i]]).slice(half).filter((p) => p[1] !== null), cls: "new" },
  ];
  return el("section", { class: "card", id: "actuation" },
    el("h2", {}, t("actuation"), " ", el("span", { class: "muted small" }, t("act.n", { n: a.strokes }))),
    el("div", { class: "legend" }, el("span", {}, el("i", { style: "background:#b2ccff" }), t("act.older")),
       el("span", {}, el("i", { style: "background:#1849a9" }), t("act.newer"))),
    scatterChart(groups(a.stroke_s), { fmt, yTitle: t("act.stroke"), xTitle: t("act.dp"), min: 0, empty: "–" }),
    scatterChart(groups(a.torque_nm), { fmt, yTitle: t("act.torque"), xTitle: t("act.dp"), min: 0, empty: "–" }));
}

function pumpCard(p, ctx, atMs) {
  const { t, fmt } = ctx;
  return el("section", { class: "card wide", id: "pump" }, el("h2", {}, t("pump")),
    ...["leak_mm3s", "temp_c", "vib_mms"].map((f, i) => timeChart(
      [{ points: p[f] || [], cls: ["", "c", "b"][i] }],
      { fmt, yTitle: t(`pump.${f}`), min: f === "temp_c" ? undefined : 0, zero: f === "leak_mm3s",
        empty: "–",
        markers: atMs ? [{ t_ms: atMs, label: t("moment") }] : [] })));
}

async function commandsCard(ctx, id, kind) {
  const { t, fmt } = ctx;
  const list = el("ul", { id: "commands" });
  const note = el("p", { class: "muted small" });
  const section = el("section", { class: "card", id: "commands-card" }, el("h2", {}, t("commands")));
  const path = `devices/${encodeURIComponent(id)}/commands`;
  const draw = async () => {
    try {
      const answer = await ctx.api(path);
      const items = answer.data || answer;
      list.replaceChildren(...items.map((c) => el("li", { dataset: { state: c.state } },
        `${t(`cmd.${c.name}`)} · ${t(`cmd.state.${c.state}`)} · ${fmt.dateTime(c.state_at || c.created_at)}`,
        c.detail ? ` · ${c.detail}` : "")));
      note.textContent = items.length ? "" : t("cmd.none");
      return true;
    } catch (e) {
      if (e.status === 404 || e.status === 405) {
        note.textContent = t("cmd.unavailable");
        button.hidden = true;
        return false;
      }
      note.textContent = e.message;
      return true;
    }
  };
  const button = el("button", { id: "stroke-test", onclick: async () => {
    button.disabled = true;
    try {
      await ctx.api(path, { method: "POST", body: { name: "stroke_test" } });
    } catch (e) { note.textContent = e.message; }
    button.disabled = false;
    await draw();
  } }, t("cmd.stroke"));
  // stroke tests are for valves, and queued by technicians (and the admin)
  if (!["operator", "admin"].includes(ctx.who.org_kind) || kind !== "valve") button.hidden = true;
  section.append(el("div", { class: "controls" }, button), list, note);
  await draw();
  return { section, draw };
}

export default {
  route: "device",
  title: "title",
  nav: false,
  strings: STRINGS,
  async render(root, ctx) {
    const { t, fmt } = ctx;
    const id = ctx.params[0];
    const at = Number(ctx.query.get("at")) || null;
    const days = Number(ctx.query.get("days")) || 90;
    const page = await ctx.api(`devices/${encodeURIComponent(id)}/health`,
                               { query: { days, at: at ?? undefined } });
    const d = page.device, h = page.health;
    document.title = `${d.device_id} · sealscope`;
    const atMs = at ? at * 1000 : null;
    const span = el("select", { id: "span", onchange: () => {
      const q = new URLSearchParams(ctx.query); q.set("days", span.value);
      ctx.go(`#/device/${encodeURIComponent(id)}?${q}`);
    } }, [7, 30, 90, 365].map((n) => el("option", { value: n }, t("days", { n }))));
    span.value = String(days);
    const reasons = h.reasons.map((r) => (r === "silent" || r === "no_data")
      ? t(`reason.${r}`) : t(`cause.${r}`)).join(t("sep"));
    root.append(
      el("p", { class: "controls" }, el("a", { href: "#/fleet" }, t("back")),
        el("label", {}, t("range"), span)),
      el("h1", { id: "device-title" }, d.device_id, " ",
        el("span", { class: `st st-${h.status}`, id: "device-status" }, t(`cat.${h.status}`)),
        reasons && el("span", { class: "muted small" }, ` ${reasons}`)),
      el("p", { class: "muted", id: "vitals" },
        `${t("lastSeen")}: ${h.last_seen ? `${fmt.ago(h.last_seen)} (${fmt.dateTime(h.last_seen)})` : "–"} · `,
        `${t("battery")}: ${fmt.unit(h.battery_v, UNITS.battery_v, 3)} · `,
        `${t("radio")}: RSRP ${fmt.unit(h.rsrp_dbm, UNITS.rsrp_dbm, 3)}, SINR ${fmt.unit(h.sinr_db, UNITS.sinr_db, 3)}`));
    const grid = el("div", { class: "grid two" });
    root.append(grid);
    if (page.seal) grid.append(sealCard(page.seal, ctx, atMs));
    if (page.pump) grid.append(pumpCard(page.pump, ctx, atMs));
    if (!page.seal && !page.pump && !page.actuation) {
      grid.append(el("section", { class: "card wide muted" }, t("noRaw")));
    }
    grid.append(el("section", { class: "card", id: "identity" }, el("h2", {}, t("identity")), kv([
      [t("kind"), t(`kind.${d.kind}`)], [t("manufacturer"), d.manufacturer], [t("model"), d.model],
      [t("dn"), d.dn ? `DN${d.dn}` : null], [t("pn"), d.pn ? `PN${d.pn}` : null],
      [t("class"), d.leakage_class], [t("seat"), d.seat_material], [t("batch"), d.batch],
      [t("firmware"), d.firmware], [t("site"), d.site], [t("region"), d.region],
      [t("registered"), fmt.dateTime(d.created_at)]])));
    if (page.actuation && page.actuation.strokes) grid.append(actuationCard(page.actuation, ctx));
    const commands = await commandsCard(ctx, id, d.kind);
    grid.append(commands.section);

    const alertsBox = el("section", { class: "card wide", id: "device-alerts" }, el("h2", {}, t("alerts")));
    const drawAlerts = (alerts) => {
      alertsBox.replaceChildren(el("h2", {}, t("alerts")), ...(alerts.length
        ? alerts.map((a) => alertCard(a, ctx, { onChange: refreshAlerts, showDevice: false }))
        : [el("p", { class: "muted" }, t("alerts.none"))]));
    };
    const refreshAlerts = async () => {
      const { data } = await ctx.api("alerts", { query: { device_id: id, limit: 100 } });
      drawAlerts(data);
    };
    drawAlerts(page.alerts);
    grid.append(alertsBox);

    let pending = null;
    const later = (fn) => { clearTimeout(pending); pending = setTimeout(() => fn().catch(() => null), 1500); };
    ctx.live.on("alert", (a) => { if (a.device_id === id) refreshAlerts().catch(() => null); });
    ctx.live.on("reading", (r) => {
      if (r.device_id !== id) return;
      const vitals = document.getElementById("vitals");
      if (vitals) vitals.dataset.fresh = r.t;
      // redraw with the new reading, unless someone is typing a comment
      const typing = [...root.querySelectorAll("input, textarea")].some((i) => i.value);
      if (!typing) later(async () => ctx.rerender());
    });
    ctx.live.on("poll", () => { refreshAlerts().catch(() => null); commands.draw(); });
    return () => clearTimeout(pending);
  },
};
