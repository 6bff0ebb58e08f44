// One alert as a card: NE 107 colour, full advice, its evidence in words, a link to the
// device page at the moment of the alert, acknowledge / assign / resolve with a comment,
// and the audit trail on demand. Shared by the alerts view and the device page.

import { el } from "./dom.js";
import { register } from "./i18n.js";

// wire field -> unit symbol (sealscope.wire)
export const UNITS = {
  p_in_kpa: "kPa", p_out_kpa: "kPa", leak_mm3s: "mm³/s", position_pct: "%", stroke_s: "s",
  torque_nm: "N·m", motor_a: "A", temp_c: "°C", vib_mms: "mm/s", flow_m3h: "m³/h",
  speed_rpm: "rpm", battery_v: "V", rsrp_dbm: "dBm", sinr_db: "dB",
};

register({
  en: {
    "cat.failure": "Failure", "cat.out_of_specification": "Out of specification",
    "cat.maintenance_required": "Maintenance required", "cat.function_check": "Function check",
    "cat.ok": "OK", "kind.valve": "valve", "kind.pump": "pump",
    "reason.silent": "silent", "reason.no_data": "no reading yet", "sep": ", ",
    "st.open": "open", "st.acknowledged": "acknowledged", "st.resolved": "resolved",
    "cause.seat_leak": "Seat leak", "cause.actuation_wear": "Actuation wear",
    "cause.pump_seal": "Pump seal", "cause.sensor_fault": "Sensor fault",
    "alert.opened": "opened {at}", "alert.ackBy": "acknowledged by {who}",
    "alert.assignee": "assigned to {who}", "alert.resolvedAt": "resolved {at}",
    "alert.atMoment": "device at this moment", "alert.comment": "comment",
    "alert.assignTo": "technician", "alert.ack": "Acknowledge", "alert.assign": "Assign",
    "alert.resolve": "Resolve", "alert.trail": "History", "alert.evidence": "Evidence",
    "alert.failed": "Not done: {message}",
    "ev.ratio": "{v}× the commissioning baseline",
    "ev.baseline_c": "baseline leak coefficient {v} mm³/s/kPa^{n}",
    "ev.current_c": "now {v} mm³/s/kPa^{n}",
    "ev.leak_at_test_mm3s": "{v} mm³/s at the ISO 5208 test pressure ({dp} kPa)",
    "ev.allowable_mm3s": "class {cls} limit {v} mm³/s for DN{dn}",
    "ev.rul": "reaches the class limit in {v} (late bound {late})",
    "ev.rul_none": "no significant upward trend",
    "ev.growth_per_30d": "grows {v}× per 30 days",
    "ev.since": "since {v}", "ev.confidence": "confidence {v}",
    "ev.channel_ratio": "{ch} {v}× its baseline ({base} {unit}) at comparable duty",
    "ev.channel_excess": "{ch} {v} {unit} over its baseline ({base} {unit})",
    "ev.samples": "{v} samples",
    "trail.raised": "raised", "trail.updated": "updated", "trail.cleared": "cleared by the detector",
    "trail.acknowledged": "acknowledged", "trail.assigned": "assigned to {who}",
    "trail.resolved": "resolved", "trail.renotify": "notified again",
  },
  "zh-CN": {
    "cat.failure": "故障", "cat.out_of_specification": "超出规格",
    "cat.maintenance_required": "需要维护", "cat.function_check": "功能检查", "cat.ok": "正常",
    "kind.valve": "阀门", "kind.pump": "泵", "reason.silent": "无上报", "reason.no_data": "尚无数据", "sep": "、",
    "st.open": "待处理", "st.acknowledged": "已确认", "st.resolved": "已解决",
    "cause.seat_leak": "阀座泄漏", "cause.actuation_wear": "执行机构磨损",
    "cause.pump_seal": "泵机械密封", "cause.sensor_fault": "传感器故障",
    "alert.opened": "发生于 {at}", "alert.ackBy": "{who} 已确认",
    "alert.assignee": "指派给 {who}", "alert.resolvedAt": "解决于 {at}",
    "alert.atMoment": "查看告警时刻的设备", "alert.comment": "备注",
    "alert.assignTo": "技术员", "alert.ack": "确认", "alert.assign": "指派",
    "alert.resolve": "解决", "alert.trail": "处理记录", "alert.evidence": "依据",
    "alert.failed": "未完成：{message}",
    "ev.ratio": "为投运基线的 {v} 倍",
    "ev.baseline_c": "基线泄漏系数 {v} mm³/s/kPa^{n}",
    "ev.current_c": "当前 {v} mm³/s/kPa^{n}",
    "ev.leak_at_test_mm3s": "ISO 5208 试验压力（{dp} kPa）下泄漏 {v} mm³/s",
    "ev.allowable_mm3s": "DN{dn} 的 {cls} 级限值 {v} mm³/s",
    "ev.rul": "预计 {v} 后达到等级限值（保守估计 {late}）",
    "ev.rul_none": "无显著上升趋势",
    "ev.growth_per_30d": "每 30 天增长 {v} 倍",
    "ev.since": "始于 {v}", "ev.confidence": "置信度 {v}",
    "ev.channel_ratio": "{ch} 为基线（{base} {unit}）的 {v} 倍（同等工况）",
    "ev.channel_excess": "{ch} 比基线（{base} {unit}）高 {v} {unit}",
    "ev.samples": "{v} 个样本",
    "trail.raised": "产生", "trail.updated": "更新", "trail.cleared": "检测器已清除",
    "trail.acknowledged": "已确认", "trail.assigned": "指派给 {who}",
    "trail.resolved": "已解决", "trail.renotify": "再次通知",
  },
});

// The evidence a detector saved, as sentences; keys it does not know are listed as they are.
export function evidenceLines(e, ctx) {
  const { t, fmt } = ctx;
  const n = (v) => fmt.number(v, 3);
  const lines = [];
  const used = new Set(["signal", "exponent", "cusum", "cusum_threshold", "threshold_ratio",
    "clear_ratio", "baseline_spread", "trend_t", "rul_s", "rul_late_s", "limit_eta_s",
    "test_dp_kpa", "dn_mm", "leakage_class", "channel", "value"]);
  const take = (key, text) => { used.add(key); if (e[key] !== null && e[key] !== undefined) lines.push(text); };
  const exp = e.exponent ?? 0.5;
  take("ratio", t("ev.ratio", { v: n(e.ratio) }));
  take("current_c", t("ev.current_c", { v: n(e.current_c), n: exp }));
  take("baseline_c", t("ev.baseline_c", { v: n(e.baseline_c), n: exp }));
  take("leak_at_test_mm3s", t("ev.leak_at_test_mm3s", { v: n(e.leak_at_test_mm3s), dp: n(e.test_dp_kpa) }));
  take("allowable_mm3s", t("ev.allowable_mm3s", { v: n(e.allowable_mm3s), cls: e.leakage_class || "?", dn: e.dn_mm ?? "?" }));
  used.add("rul");
  if (Number.isFinite(e.rul_s)) {
    lines.push(t("ev.rul", { v: fmt.duration(e.rul_s), late: fmt.duration(e.rul_late_s) }));
  } else if (e.rul === "no significant upward trend") lines.push(t("ev.rul_none"));
  take("growth_per_30d", t("ev.growth_per_30d", { v: n(e.growth_per_30d) }));
  if (e.channel) {
    for (const ch of ["leak_mm3s", "temp_c", "vib_mms", "stroke_s", "torque_nm", "motor_a"]) {
      const base = e[`${ch}_baseline`];
      used.add(`${ch}_baseline`); used.add(`${ch}_ratio`); used.add(`${ch}_excess`);
      if (e[`${ch}_ratio`] != null) {
        lines.push(t("ev.channel_ratio", { ch, v: n(e[`${ch}_ratio`]), base: n(base), unit: UNITS[ch] }));
      } else if (e[`${ch}_excess`] != null) {
        lines.push(t("ev.channel_excess", { ch, v: n(e[`${ch}_excess`]), base: n(base), unit: UNITS[ch] }));
      }
    }
  }
  take("since", t("ev.since", { v: fmt.dateTime(e.since) }));
  take("confidence", t("ev.confidence", { v: fmt.percent(e.confidence) }));
  take("samples", t("ev.samples", { v: e.samples }));
  for (const [k, v] of Object.entries(e)) {
    if (used.has(k) || v === null || typeof v === "object") continue;
    lines.push(`${k}: ${typeof v === "number" ? n(v) : v}`);
  }
  return lines;
}

const MAY_ACT = new Set(["operator", "admin"]);

export function alertCard(a, ctx, { onChange, showDevice }) {
  const { t, fmt } = ctx;
  const openedS = Date.parse(a.opened_at) / 1000;
  const meta = el("div", { class: "meta" },
    el("span", { class: `sev sev-${a.severity}`, title: "severity" }, a.severity),
    el("span", { class: "status" }, t(`st.${a.status}`)),
    el("span", {}, t("alert.opened", { at: fmt.dateTime(a.opened_at) })),
    a.acknowledged_by && el("span", {}, t("alert.ackBy", { who: a.acknowledged_by })),
    a.assignee && el("span", {}, t("alert.assignee", { who: a.assignee })),
    a.resolved_at && el("span", {}, t("alert.resolvedAt", { at: fmt.dateTime(a.resolved_at) })));
  const head = el("div", { class: "head" },
    el("strong", { class: `st st-${a.category}` }, t(`cat.${a.category}`)), " · ",
    t(`cause.${a.cause}`), " · ",
    showDevice
      ? el("a", { href: `#/device/${encodeURIComponent(a.device_id)}?at=${Math.round(openedS)}`,
                  class: "device-link", title: t("alert.atMoment") }, a.device_id)
      : el("a", { href: `#/device/${encodeURIComponent(a.device_id)}?at=${Math.round(openedS)}`,
                  class: "device-link" }, t("alert.atMoment")));
  const evidence = evidenceLines(a.evidence || {}, ctx);
  const card = el("article", { class: `alert st-${a.category}`, dataset: { id: a.id, status: a.status, cause: a.cause } },
    head,
    el("p", { class: "advice" }, a.summary),
    evidence.length ? el("details", { class: "evidence" },
      el("summary", {}, t("alert.evidence")),
      el("ul", {}, evidence.map((line) => el("li", {}, line)))) : null,
    meta);
  if (a.status !== "resolved" && MAY_ACT.has(ctx.who.org_kind)) {
    const comment = el("input", { class: "comment", placeholder: t("alert.comment"), maxlength: 2000 });
    const assignee = el("input", { class: "assignee", placeholder: t("alert.assignTo"), maxlength: 128, size: 10 });
    const note = el("span", { class: "error small" });
    const act = async (action, body) => {
      note.textContent = "";
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      try {
        await ctx.api(`alerts/${a.id}/${action}`, { method: "POST", body });
        await onChange();
      } catch (e) {
        note.textContent = t("alert.failed", { message: e.message });
        for (const b of card.querySelectorAll("button")) b.disabled = false;
      }
    };
    card.append(el("div", { class: "act" },
      comment,
      a.status === "open" && el("button", { class: "primary ack",
        onclick: () => act("acknowledge", { comment: comment.value }) }, t("alert.ack")),
      el("button", { class: "resolve", onclick: () => act("resolve", { note: comment.value }) },
        t("alert.resolve")),
      assignee,
      el("button", { class: "assign", onclick: () => assignee.value.trim()
        ? act("assign", { assignee: assignee.value.trim() }) : assignee.focus() }, t("alert.assign")),
      note));
  }
  const trail = el("ol", { class: "trail", hidden: true });
  card.append(el("button", { class: "trail-toggle small", onclick: async () => {
    if (trail.hidden) {
      const { data } = await ctx.api(`alerts/${a.id}/events`);
      trail.replaceChildren(...data.map((e) => el("li", {},
        `${fmt.dateTime(e.at)} · ${e.actor} · ${t(`trail.${e.action}`, { who: e.assignee })}`,
        e.comment ? ` — “${e.comment}”` : "")));
    }
    trail.hidden = !trail.hidden;
  } }, t("alert.trail")), trail);
  return card;
}
