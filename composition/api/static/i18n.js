// Languages, strings and locale formatting for every view.
//
// Two locales: "zh-CN" (the default when the browser lists a Chinese language before
// English) and "en". The choice is kept in localStorage. Strings are registered per view
// (its `strings`), looked up by key with the English text as fallback, so a missing
// translation shows English rather than a key. Numbers, units and dates go through Intl.

export const LOCALES = ["zh-CN", "en"];
const STORE_KEY = "sealscope.locale";
const tables = { en: {}, "zh-CN": {} };
let current = pickLocale();

function pickLocale() {
  const saved = globalThis.localStorage?.getItem(STORE_KEY);
  if (LOCALES.includes(saved)) return saved;
  for (const lang of navigator.languages || [navigator.language || "en"]) {
    const l = lang.toLowerCase();
    if (l.startsWith("zh")) return "zh-CN";
    if (l.startsWith("en")) return "en";
  }
  return "en";
}

export function locale() {
  return current;
}

export function setLocale(next) {
  if (!LOCALES.includes(next)) return;
  current = next;
  globalThis.localStorage?.setItem(STORE_KEY, next);
  document.documentElement.lang = next;
}

// strings: {en: {key: text}, "zh-CN": {key: text}}; later registrations add keys
export function register(strings) {
  for (const l of LOCALES) Object.assign(tables[l], (strings && strings[l]) || {});
}

export function has(key) {
  return key in tables[current] || key in tables.en;
}

// t("fleet.count", {n: 3}) -> "3 devices"; {name} placeholders, numbers locale-formatted
export function t(key, vars) {
  const text = tables[current][key] ?? tables.en[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (m, name) => {
    const v = vars[name];
    if (v === undefined || v === null) return "";
    return typeof v === "number" ? number(v) : String(v);
  });
}

const numberFormats = new Map();
function numberFormat(opts) {
  const key = current + JSON.stringify(opts || {});
  if (!numberFormats.has(key)) numberFormats.set(key, new Intl.NumberFormat(current, opts));
  return numberFormats.get(key);
}

// a number for the locale; digits: significant digits (default: up to 4)
export function number(v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (Number.isInteger(v) && digits === undefined) return numberFormat({}).format(v);
  return numberFormat({ maximumSignificantDigits: digits || 4 }).format(v);
}

export function fixed(v, decimals) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return numberFormat({ minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(v);
}

// value with its unit symbol (SI symbols read the same in both languages)
export function unit(v, symbol, digits) {
  const n = number(v, digits);
  return n === "–" || !symbol ? n : `${n} ${symbol}`;
}

export function percent(v) {
  return Number.isFinite(v) ? numberFormat({ style: "percent", maximumFractionDigits: 1 })
    .format(v) : "–";
}

function toDate(v) {
  if (v === null || v === undefined || v === "") return null;
  const d = v instanceof Date ? v : new Date(typeof v === "number" ? v * 1000 : v);
  return Number.isNaN(d.getTime()) ? null : d;
}

const dateFormats = new Map();
function dateFormat(opts) {
  const key = current + JSON.stringify(opts);
  if (!dateFormats.has(key)) dateFormats.set(key, new Intl.DateTimeFormat(current, opts));
  return dateFormats.get(key);
}

// Date, ISO string or Unix seconds
export function dateTime(v) {
  const d = toDate(v);
  return d ? dateFormat({ dateStyle: "medium", timeStyle: "short" }).format(d) : "–";
}

export function date(v) {
  const d = toDate(v);
  return d ? dateFormat({ dateStyle: "medium" }).format(d) : "–";
}

let relative = null, relativeLocale = null;  // building one per call is slow in long lists
function relativeFormat() {
  if (relativeLocale !== current) {
    relative = new Intl.RelativeTimeFormat(current, { numeric: "auto" });
    relativeLocale = current;
  }
  return relative;
}

// "3 hours ago" / "3小时前"
export function ago(v) {
  const d = toDate(v);
  if (!d) return "–";
  const s = (d.getTime() - Date.now()) / 1000;
  const rtf = relativeFormat();
  for (const [unitName, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(s) >= size) return rtf.format(Math.round(s / size), unitName);
  }
  return rtf.format(Math.round(s), "second");
}

// a duration in seconds as days or hours, e.g. "42 days" / "42天"
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const days = seconds / 86400;
  const [value, unitName] = days >= 2 ? [days, "day"] : [seconds / 3600, "hour"];
  return numberFormat({ style: "unit", unit: unitName, unitDisplay: "long",
                        maximumFractionDigits: 0 }).format(value);
}

export const fmt = { number, fixed, unit, percent, dateTime, date, ago, duration };
