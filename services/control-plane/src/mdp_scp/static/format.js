// Number and time formatting shared by the widgets; every function accepts missing values.

const dash = "\u2013";

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function price(value) {
  if (!isNumber(value)) return dash;
  return value >= 1 ? value.toFixed(2) : value.toFixed(4);
}

export function signed(value, digits = 2) {
  if (!isNumber(value)) return dash;
  return (value > 0 ? "+" : "") + value.toFixed(digits);
}

export function percent(value) {
  return isNumber(value) ? `${signed(value)}%` : dash;
}

export function compact(value) {
  if (!isNumber(value)) return dash;
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(2)}B`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}K`;
  return String(Math.round(value));
}

export function ratio(value) {
  return isNumber(value) ? `${value.toFixed(1)}x` : dash;
}

export function clock(ms) {
  if (!isNumber(ms)) return dash;
  // Exchange time: traders read the tape in New York time wherever they sit.
  return new Date(ms).toLocaleTimeString("en-US", {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
    timeZone: "America/New_York",
  });
}

// The same with its zone, for every time shown on its own (lists, "as of", the clock).
export function clockEt(ms) {
  return isNumber(ms) ? `${clock(ms)} ET` : dash;
}

// Unix seconds, milliseconds or nanoseconds -> milliseconds (payloads name their unit, but
// older documents used bare "timestamp" fields).
export function toMs(value) {
  if (!isNumber(value)) return undefined;
  if (value > 1e17) return value / 1e6;
  if (value > 1e11) return value;
  return value * 1000;
}

export function signClass(value) {
  if (!isNumber(value) || value === 0) return "";
  return value > 0 ? "up" : "down";
}
