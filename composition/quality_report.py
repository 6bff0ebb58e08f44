"""The quality report: per manufacturer or per model, a period's field failure and
degradation rates against the peers, with exact intervals and the evidence; as rows (JSON),
CSV and PDF (docs/reports.md lists the columns).

Groups are what the caller's scope allows (``Scope.allows_risk_group``), their figures over
the devices the caller sees; the peers are the rest of the fleet of the same asset kinds,
shown only as aggregates, as in the fleet risk table.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np

from composition.quality import (
    KINDS,
    FleetArrays,
    FleetSnapshot,
    PeriodArrays,
    rate_with_interval,
    share_interval,
)
from sealscope.accounts import Scope
from sealscope.alerts import Alert
from sealscope.errors import NotFound
from sealscope.risk import RiskTable

__all__ = ["COLUMNS", "Lang", "ReportBy", "build_report", "report_csv", "report_pdf"]

ReportBy = Literal["manufacturer", "model"]
Lang = Literal["en", "zh-CN"]
_EVIDENCE_ALERTS: Final = 5

# (key, English heading, Chinese heading): the CSV's columns in order
COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("dimension", "dimension", "维度"),
    ("group", "group", "分组"),
    ("period_from", "period from (UTC)", "起始 (UTC)"),
    ("period_to", "period to (UTC)", "截止 (UTC)"),
    ("kinds", "asset kinds", "设备类型"),
    ("devices", "devices", "设备数"),
    ("device_years", "device-years at risk", "风险设备年"),
    ("service_years", "device-years in service", "在役设备年"),
    ("degraded", "degraded devices", "劣化设备数"),
    ("degradation_rate", "degradation rate /device-year", "劣化率 /设备年"),
    ("degradation_rate_low", "degradation rate 95% low", "劣化率 95% 下限"),
    ("degradation_rate_high", "degradation rate 95% high", "劣化率 95% 上限"),
    ("degraded_share", "share degraded", "劣化比例"),
    ("degraded_share_low", "share degraded 95% low", "劣化比例 95% 下限"),
    ("degraded_share_high", "share degraded 95% high", "劣化比例 95% 上限"),
    ("peer_devices", "peer devices", "同类设备数"),
    ("peer_degradation_rate", "peer degradation rate /device-year", "同类劣化率 /设备年"),
    ("degradation_expected", "degradations expected at peer rate", "按同类率预期劣化数"),
    ("degradation_rate_ratio", "degradation rate ratio", "劣化率比"),
    ("degradation_rate_ratio_low", "degradation rate ratio 95% low", "劣化率比 95% 下限"),
    ("degradation_rate_ratio_high", "degradation rate ratio 95% high", "劣化率比 95% 上限"),
    ("degradation_p_value", "degradation p (one-sided, exact)", "劣化 p 值 (单侧精确)"),
    ("failures", "field failures", "现场故障数"),
    ("failed_devices", "devices with a failure", "故障设备数"),
    ("failure_rate", "failure rate /device-year", "故障率 /设备年"),
    ("failure_rate_low", "failure rate 95% low", "故障率 95% 下限"),
    ("failure_rate_high", "failure rate 95% high", "故障率 95% 上限"),
    ("peer_failure_rate", "peer failure rate /device-year", "同类故障率 /设备年"),
    ("failure_rate_ratio", "failure rate ratio", "故障率比"),
    ("failure_rate_ratio_low", "failure rate ratio 95% low", "故障率比 95% 下限"),
    ("failure_rate_ratio_high", "failure rate ratio 95% high", "故障率比 95% 上限"),
    ("failure_p_value", "failure p (one-sided, exact)", "故障 p 值 (单侧精确)"),
    ("risk_strength", "fleet risk evidence", "批量风险证据强度"),
    ("risk_q_value", "fleet risk q (FDR)", "批量风险 q 值 (FDR)"),
    ("causes", "alerts by cause", "按原因告警数"),
    ("evidence", "evidence", "证据"),
)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    snapshot: FleetSnapshot,
    scope: Scope,
    table: RiskTable | None,
    *,
    by: ReportBy,
    start: float,
    end: float,
    group: str | None = None,
) -> dict[str, Any]:
    arrays = FleetArrays(snapshot.devices)
    visible = np.fromiter(
        (scope.allows_device(f.device) for f in snapshot.devices), bool, len(arrays)
    )
    values = arrays.values(by)
    makers: dict[str, set[str]] = {}
    for f in snapshot.devices:
        makers.setdefault(getattr(f.device, by), set()).add(f.device.manufacturer)
    names = sorted({str(v) for v in values[visible] if v})
    groups = [n for n in names if scope.allows_risk_group(by, n, makers[n] - {""})]
    if group is not None:
        if group not in groups:
            raise NotFound(by, group)
        groups = [group]
    period = arrays.period(start, end)
    index = {f.device.device_id: i for i, f in enumerate(snapshot.devices)}
    in_period: dict[str, list[Alert]] = {}
    for a in snapshot.alerts:  # newest first
        i = index[a.device_id]
        if visible[i] and start <= a.opened_at <= end:
            in_period.setdefault(str(values[i]), []).append(a)
    risk_rows = {r.key: r for r in table.rows} if table is not None else {}
    rows = []
    for name in groups:
        in_group = values == name
        members = in_group & visible
        peers = ~in_group & arrays.kinds_mask(members)
        row = _row(arrays, period, by, name, members, peers, in_period.get(name, []))
        row["period_from"], row["period_to"] = _iso(start), _iso(end)
        risk = risk_rows.get(f"{by}:{name}")
        if risk is not None and scope.allows_risk_row(risk):
            row.update(risk_strength=risk.strength, risk_q_value=risk.q_value)
        row["evidence"] = _evidence_en(row)
        row["evidence_zh"] = _evidence_zh(row)
        rows.append(row)
    return {
        "by": by,
        "period_from": _iso(start),
        "period_to": _iso(end),
        "generated_at": _iso(snapshot.now),
        "level": 0.95,
        "rows": rows,
    }


def _row(
    arrays: FleetArrays,
    period: PeriodArrays,
    by: str,
    name: str,
    members: np.ndarray,
    peers: np.ndarray,
    counted: list[Alert],
) -> dict[str, Any]:
    kinds = sorted(KINDS[k] for k in np.unique(arrays.kind[members]))
    g = period.counts(members)
    p = period.counts(peers)
    deg = period.compare(members, peers, what="degradation")
    fail = period.compare(members, peers, what="failure")
    rate, rate_lo, rate_hi = rate_with_interval(g.degraded, g.at_risk_years)
    share = share_interval(g.degraded, g.at_risk_devices)
    f_rate, f_lo, f_hi = rate_with_interval(g.failures, g.service_years)
    causes = Counter(a.cause for a in counted)
    return {
        "dimension": by,
        "group": name,
        "kinds": kinds,
        "devices": g.devices,
        "device_years": g.at_risk_years,
        "service_years": g.service_years,
        "degraded": g.degraded,
        "degradation_rate": rate,
        "degradation_rate_low": rate_lo,
        "degradation_rate_high": rate_hi,
        "degraded_share": g.degraded / g.at_risk_devices if g.at_risk_devices else None,
        "degraded_share_low": share[0] if share else None,
        "degraded_share_high": share[1] if share else None,
        "peer_devices": p.devices,
        "peer_degradation_rate": rate_with_interval(p.degraded, p.at_risk_years)[0],
        "degradation_expected": deg.expected,
        "degradation_rate_ratio": deg.rate_ratio,
        "degradation_rate_ratio_low": deg.rate_ratio_low,
        "degradation_rate_ratio_high": deg.rate_ratio_high,
        "degradation_p_value": deg.p_value,
        "failures": g.failures,
        "failed_devices": g.failed_devices,
        "failure_rate": f_rate,
        "failure_rate_low": f_lo,
        "failure_rate_high": f_hi,
        "peer_failure_rate": rate_with_interval(p.failures, p.service_years)[0],
        "failure_rate_ratio": fail.rate_ratio,
        "failure_rate_ratio_low": fail.rate_ratio_low,
        "failure_rate_ratio_high": fail.rate_ratio_high,
        "failure_p_value": fail.p_value,
        "risk_strength": None,
        "risk_q_value": None,
        "causes": dict(sorted(causes.items())),
        "alerts": [
            {
                "id": a.id,
                "device_id": a.device_id,
                "cause": a.cause,
                "category": a.category,
                "opened_at": _iso(a.opened_at),
                "summary": a.summary,
            }
            for a in counted[:_EVIDENCE_ALERTS]
        ],
    }


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x == float("inf"):
        return "inf"
    return f"{x:.{digits}g}"


def _ratio_text(row: dict[str, Any], lang: Lang) -> str:
    rr = row["degradation_rate_ratio"]
    if rr is None:
        return "no peer degradations to compare with" if lang == "en" else "同类无劣化可比"
    lo, hi = _num(row["degradation_rate_ratio_low"], 2), _num(row["degradation_rate_ratio_high"], 2)
    p = _num(row["degradation_p_value"], 2)
    if lang == "en":
        return f"{rr:.2f}x its peers (95 % CI {lo}-{hi}, p = {p})"
    return f"为同类的 {rr:.2f} 倍 (95% 置信区间 {lo}-{hi}, p = {p})"


def _evidence_en(row: dict[str, Any]) -> str:
    text = (
        f"{row['degraded']} of {row['devices']} devices degraded in the period, "
        f"{_num(row['degradation_rate'])} per device-year at risk against "
        f"{_num(row['peer_degradation_rate'])} for peers of the same kind: "
        f"{_ratio_text(row, 'en')}; {row['failures']} field failures "
        f"({_num(row['failure_rate'])} per device-year)."
    )
    if row["risk_strength"] is not None:
        text += (
            f" Fleet risk: {row['risk_strength']} evidence (q = {_num(row['risk_q_value'], 2)})."
        )
    return text


def _evidence_zh(row: dict[str, Any]) -> str:
    text = (
        f"本期 {row['devices']} 台设备中 {row['degraded']} 台劣化, "
        f"每设备年 {_num(row['degradation_rate'])} 次, 同类设备为 "
        f"{_num(row['peer_degradation_rate'])} 次: {_ratio_text(row, 'zh-CN')}; "
        f"现场故障 {row['failures']} 次 (每设备年 {_num(row['failure_rate'])} 次)。"
    )
    strength = row["risk_strength"]
    if strength is not None:
        said = {"none": "未标记", "weak": "弱证据", "moderate": "中等证据", "strong": "强证据"}
        text += f" 批量风险: {said[strength]} (q = {_num(row['risk_q_value'], 2)})。"
    return text


def _cell(row: dict[str, Any], key: str, lang: Lang) -> str:
    value = row.get(key)
    if key == "evidence" and lang == "zh-CN":
        value = row["evidence_zh"]
    if value is None:
        return ""
    if key == "causes":
        return "; ".join(f"{k}={v}" for k, v in value.items())
    if key == "kinds":
        return " ".join(value)
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.6g}"
    return str(value)


def report_csv(report: dict[str, Any], lang: Lang = "en") -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([zh if lang == "zh-CN" else en for _, en, zh in COLUMNS])
    for row in report["rows"]:
        writer.writerow([_cell(row, key, lang) for key, _, _ in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_PDF_TEXT: Final[dict[str, dict[str, Any]]] = {
    "en": {
        "title": "Field quality report by {by}",
        "period": "Period {a} to {b} (UTC); generated {g}. Rates per device-year, 95 % exact"
        " intervals; peers are the rest of the fleet of the same asset kinds.",
        "head": (
            "group",
            "devices",
            "dev-years",
            "degraded",
            "degradation rate [95 % CI]",
            "peers",
            "rate ratio [95 % CI]",
            "p",
            "failures",
            "failure rate [95 % CI]",
            "fleet risk",
        ),
        "evidence": "Evidence",
        "none": "No group in your scope has devices in service in this period.",
        "manufacturer": "manufacturer",
        "model": "model",
    },
    "zh-CN": {
        "title": "按{by}的现场质量报告",
        "period": "统计期 {a} 至 {b} (UTC); 生成于 {g}。比率为每设备年, 95% 精确置信区间;"
        " 同类为同一设备类型的其余设备。",
        "head": (
            "分组",
            "设备数",
            "设备年",
            "劣化数",
            "劣化率 [95% CI]",
            "同类",
            "率比 [95% CI]",
            "p",
            "故障数",
            "故障率 [95% CI]",
            "批量风险",
        ),
        "evidence": "证据",
        "none": "您的范围内没有在本期在役的分组。",
        "manufacturer": "制造商",
        "model": "型号",
    },
}


def _with_ci(row: dict[str, Any], key: str) -> str:
    if row[key] is None:
        return "-"
    return f"{_num(row[key])} [{_num(row[key + '_low'])}-{_num(row[key + '_high'])}]"


def report_pdf(report: dict[str, Any], lang: Lang = "en") -> bytes:
    """A4 landscape; every string in reportlab's built-in CID font STSong-Light (Adobe's
    Chinese font the PDF viewer supplies), so Chinese renders with no font file shipped."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    text = _PDF_TEXT[lang]
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    title = ParagraphStyle("title", fontName=font, fontSize=15, leading=20, spaceAfter=6)
    small = ParagraphStyle("small", fontName=font, fontSize=8, leading=10)

    def para(s: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(s.replace("&", "&amp;").replace("<", "&lt;"), style)

    story: list[Any] = [
        para(text["title"].format(by=text[report["by"]]), title),
        para(
            text["period"].format(
                a=report["period_from"], b=report["period_to"], g=report["generated_at"]
            )
        ),
        Spacer(1, 4 * mm),
    ]
    rows = report["rows"]
    if not rows:
        story.append(para(text["none"]))
    else:
        data: list[list[Any]] = [[para(h, small) for h in text["head"]]]
        for r in rows:
            rr = "-"
            if r["degradation_rate_ratio"] is not None:
                rr = (
                    f"{r['degradation_rate_ratio']:.2f} [{_num(r['degradation_rate_ratio_low'], 2)}"
                    f"-{_num(r['degradation_rate_ratio_high'], 2)}]"
                )
            cells = [
                r["group"],
                str(r["devices"]),
                _num(r["device_years"]),
                str(r["degraded"]),
                _with_ci(r, "degradation_rate"),
                _num(r["peer_degradation_rate"]),
                rr,
                _num(r["degradation_p_value"], 2),
                str(r["failures"]),
                _with_ci(r, "failure_rate"),
                r["risk_strength"] or "-",
            ]
            data.append([para(c, small) for c in cells])
        table = Table(data, repeatRows=1, colWidths=[32 * mm] + [22 * mm] * 10)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story += [table, Spacer(1, 5 * mm), para(text["evidence"], title)]
        for r in rows:
            evidence = r["evidence_zh"] if lang == "zh-CN" else r["evidence"]
            story.append(para(f"{r['group']}: {evidence}"))
            for a in r["alerts"]:
                line = f"#{a['id']} {a['opened_at']} {a['device_id']} {a['cause']}: {a['summary']}"
                story.append(para(line, small))
            story.append(Spacer(1, 2 * mm))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=text["title"].format(by=text[report["by"]]),
        author="sealscope",
    )
    doc.build(story)
    return out.getvalue()
