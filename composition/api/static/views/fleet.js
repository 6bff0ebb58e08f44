// Fleet health: every device in scope with its NAMUR NE 107 status, last seen, battery,
// radio quality and open alerts; filter by site, kind and status; worst first. A click
// opens the device. The first request asks for one screenful (the worst 300, with the
// total and the count per status); further pages of the server's order are fetched in
// the background and drawn 300 at a time as the list scrolls, so a fleet of 10,000 shows
// its worst devices without waiting for the rest.

import { el } from "../dom.js";
import { UNITS } from "../alert_card.js";

const STATUSES = ["failure", "function_check", "out_of_specification", "maintenance_required", "ok"];
const CHUNK = 300;  // rows drawn at a time, and the first request's page
const PAGE = 5000;  // rows per background request (the server ranks the fleet for each)

const STRINGS = {
  en: {
    title: "Fleet", heading: "Fleet health", count: "{n} devices",
    all: "all", site: "Site", kind: "Kind",
    "col.status": "Status", "col.device": "Device", "col.model": "Model", "col.site": "Site",
    "col.seen": "Last seen", "col.battery": "Battery", "col.rsrp": "RSRP", "col.sinr": "SINR",
    "col.alerts": "Open alerts",
    more: "{n} more — scroll or tap to show", none: "No device matches.",
    noVitals: "This telemetry store does not keep newest readings: last seen, battery and radio are unknown.",
  },
  "zh-CN": {
    title: "设备总览", heading: "设备健康总览", count: "{n} 台设备",
    all: "全部", site: "站点", kind: "类型",
    "col.status": "状态", "col.device": "设备", "col.model": "型号", "col.site": "站点",
    "col.seen": "最近上报", "col.battery": "电池", "col.rsrp": "RSRP", "col.sinr": "SINR",
    "col.alerts": "未处理告警",
    more: "还有 {n} 台 — 向下滚动或点击显示", none: "没有符合条件的设备。",
    noVitals: "当前遥测存储不保存最新读数：最近上报、电池和信号未知。",
  },
};

export default {
  route: "fleet",
  title: "title",
  strings: STRINGS,
  async render(root, ctx) {
    const { t, fmt, query } = ctx;
    const filters = { site: query.get("site") || "", kind: query.get("kind") || "",
                      status: query.getAll("status") };
    const setFilter = (patch) => {
      const next = { ...filters, ...patch };
      const q = new URLSearchParams();
      if (next.site) q.set("site", next.site);
      if (next.kind) q.set("kind", next.kind);
      for (const s of next.status) q.append("status", s);
      ctx.go(`#/fleet${[...q].length ? `?${q}` : ""}`);
    };

    const count = el("span", { class: "muted", id: "fleet-count" });
    const chips = el("div", { class: "chips", id: "status-chips" });
    const siteSelect = el("select", { id: "filter-site", onchange: () => setFilter({ site: siteSelect.value }) },
      el("option", { value: "" }, t("all")));
    const kindSelect = el("select", { id: "filter-kind", onchange: () => setFilter({ kind: kindSelect.value }) },
      el("option", { value: "" }, t("all")),
      el("option", { value: "valve" }, t("kind.valve")), el("option", { value: "pump" }, t("kind.pump")));
    kindSelect.value = filters.kind;
    const note = el("p", { class: "muted small", id: "fleet-note" });
    const body = el("tbody", { id: "fleet-rows" });
    const more = el("button", { id: "fleet-more", hidden: true });
    const heads = ["status", "device", "model", "site", "seen", "battery", "rsrp", "sinr", "alerts"];
    const table = el("table", { class: "cards", id: "fleet" },
      el("thead", {}, el("tr", {}, heads.map((h) =>
        el("th", { class: ["battery", "rsrp", "sinr", "alerts"].includes(h) ? "num" : "" }, t(`col.${h}`))))),
      body);
    root.append(el("section", { class: "card" },
      el("h1", {}, t("heading"), " ", count),
      chips,
      el("div", { class: "controls" },
        el("label", {}, t("site"), siteSelect), el("label", {}, t("kind"), kindSelect)),
      note,
      el("div", { class: "scroll" }, table),
      more));

    // rows: fetched so far in the server's order; shown: drawn; total: the server's count
    let rows = [], shown = 0, total = 0, complete = true, byId = new Map(), ids = new Set();
    let generation = 0, fetching = null, nextOffset = 0;  // the server offset to ask for next
    // formatters made once per render, not once per cell: 10,000 rows add up
    const labels = Object.fromEntries(heads.map((h) => [h, t(`col.${h}`)]));
    const statusText = Object.fromEntries(STATUSES.map((s) => [s, t(`cat.${s}`)]));
    const num = new Intl.NumberFormat(ctx.locale, { maximumSignificantDigits: 3 });
    const withUnit = (v, u) => (Number.isFinite(v) ? `${num.format(v)} ${u}` : "–");
    const reasonText = (r) => ((r === "silent" || r === "no_data") ? t(`reason.${r}`) : t(`cause.${r}`));
    // one row built once, then cloned and filled: far cheaper than building 20 nodes a row
    const cell = (h, cls, ...children) => el("td", { "data-label": labels[h], class: cls }, ...children);
    const template = el("tr", { class: "pick" },
      cell("status", "", el("span", { class: "st" }), el("div", { class: "muted small" })),
      cell("device", "", el("a"), el("div", { class: "muted small" })),
      cell("model", ""), cell("site", ""), cell("seen", "seen"),
      cell("battery", "num battery"), cell("rsrp", "num"), cell("sinr", "num"),
      cell("alerts", "num alerts"));
    const kinds = { valve: t("kind.valve"), pump: t("kind.pump") };
    const rowFor = (d) => {
      const tr = template.cloneNode(true);
      tr.dataset.id = d.device_id;
      tr.dataset.status = d.status;
      const [st, dev, model, site, seen, battery, rsrp, sinr, alerts] = tr.children;
      st.firstChild.className = `st st-${d.status}`;
      st.firstChild.textContent = statusText[d.status];
      st.lastChild.textContent = d.reasons.map(reasonText).join(t("sep"));
      dev.firstChild.href = `#/device/${encodeURIComponent(d.device_id)}`;
      dev.firstChild.textContent = d.device_id;
      dev.lastChild.textContent = kinds[d.kind];
      model.textContent = `${d.manufacturer} ${d.model}`;
      site.textContent = d.site || d.region || "–";
      seen.textContent = d.last_seen ? fmt.ago(d.last_seen) : "–";
      battery.textContent = withUnit(d.battery_v, UNITS.battery_v);
      rsrp.textContent = withUnit(d.rsrp_dbm, UNITS.rsrp_dbm);
      sinr.textContent = withUnit(d.sinr_db, UNITS.sinr_db);
      alerts.textContent = d.open_alerts || "";
      return tr;
    };
    // one listener for every row
    body.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-id]");
      if (tr && !event.target.closest("a")) ctx.go(`#/device/${encodeURIComponent(tr.dataset.id)}`);
    });
    const filterQuery = () => ({ site: filters.site, kind: filters.kind, status: filters.status });
    // the next page after what is fetched; a device whose status changed between two
    // pages can come twice (kept once) or not at all until the next reload
    const fetchNext = () => {
      if (fetching || complete) return fetching;
      const gen = generation;
      fetching = ctx.api("fleet/health", { query: { ...filterQuery(), offset: nextOffset, limit: PAGE } })
        .then((answer) => {
          if (gen !== generation) return;
          nextOffset += answer.data.length;
          for (const d of answer.data) if (!ids.has(d.device_id)) { ids.add(d.device_id); rows.push(d); }
          complete = answer.data.length < PAGE || answer.offset + answer.data.length >= answer.total;
        })
        .catch((e) => { if (gen === generation && e.name !== "AbortError") { complete = true; console.warn(e); } })
        .finally(() => { if (gen === generation) fetching = null; });
      return fetching;
    };
    const draw = () => {
      const frag = document.createDocumentFragment();
      for (const d of rows.slice(shown, shown + CHUNK)) {
        const tr = rowFor(d);
        byId.set(d.device_id, tr);
        frag.append(tr);
      }
      body.append(frag);
      shown = Math.min(rows.length, shown + CHUNK);
      more.hidden = complete && shown >= rows.length;
      more.textContent = t("more", { n: Math.max(total, rows.length) - shown });
      if (rows.length - shown < PAGE / 2) fetchNext();  // keep well ahead of the scroll
    };
    const showMore = async () => {
      // drawing is synchronous; only waiting for the next page can overlap
      if (shown >= rows.length && !complete) await fetchNext();
      if (shown < rows.length) draw();
      else more.hidden = complete;
    };
    more.addEventListener("click", showMore);
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !more.hidden) showMore();
    });
    observer.observe(more);

    const load = async () => {
      const gen = ++generation;
      const started = performance.now();
      const answer = await ctx.api("fleet/health", { query: { ...filterQuery(), limit: CHUNK } });
      if (gen !== generation) return;
      const fetched = performance.now();
      rows = [];
      ids = new Set();
      for (const d of answer.data) if (!ids.has(d.device_id)) { ids.add(d.device_id); rows.push(d); }
      total = answer.total;
      nextOffset = answer.data.length;
      complete = answer.data.length >= answer.total;
      fetching = null;
      shown = 0;
      byId = new Map();
      body.replaceChildren();
      count.textContent = t("count", { n: answer.total });
      chips.replaceChildren(...STATUSES.map((s) => el("button", {
        class: `chip st st-${s}`, "aria-pressed": String(filters.status.includes(s)),
        dataset: { status: s },
        onclick: () => setFilter({ status: filters.status.includes(s)
          ? filters.status.filter((x) => x !== s) : [...filters.status, s] }),
      }, `${t(`cat.${s}`)} ${fmt.number(answer.counts[s] || 0)}`)));
      const sites = [...answer.sites];
      if (filters.site && !sites.includes(filters.site)) sites.unshift(filters.site);
      siteSelect.replaceChildren(el("option", { value: "" }, t("all")),
        ...sites.map((s) => el("option", { value: s }, s)));
      siteSelect.value = filters.site;
      note.textContent = !answer.vitals_known ? t("noVitals") : rows.length ? "" : t("none");
      draw();
      // measured by the browser test: the first page's answer time and its drawing
      window.sealscopeTiming = { fleet_fetch_ms: fetched - started,
        fleet_render_ms: performance.now() - fetched, fleet_rows: answer.total,
        fleet_first_rows: rows.length };
    };
    await load();

    let pending = null;
    const reloadSoon = () => {
      clearTimeout(pending);
      // a burst of alert changes is one reload (of the first page; the rest follows again)
      pending = setTimeout(() => load().catch(() => null), 3000);
    };
    ctx.live.on("alert", reloadSoon);
    ctx.live.on("poll", reloadSoon);
    ctx.live.on("reading", (r) => {
      const tr = byId.get(r.device_id);
      if (!tr) return;
      tr.querySelector(".seen").textContent = fmt.ago(r.t);
      if (r.values && Number.isFinite(r.values.battery_v)) {
        tr.querySelector(".battery").textContent = withUnit(r.values.battery_v, UNITS.battery_v);
      }
      tr.classList.remove("fresh"); void tr.offsetWidth; tr.classList.add("fresh");
    });
    return () => { generation += 1; observer.disconnect(); clearTimeout(pending); };
  },
};
