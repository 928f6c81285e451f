// Times are shown in the browser's time zone; the API sends UTC ISO 8601 strings.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  timeZoneName: "short",
});

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return dateTime.format(date);
}

/** A <time> element: the local time as text, the UTC instant in datetime. */
export function timeElement(h, iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso }, formatTime(iso));
}

export function formatCount(n) {
  return typeof n === "number" ? n.toLocaleString() : "—";
}

/** A value of <input type="datetime-local"> (the browser's time zone) as a UTC ISO string. */
export function localInputToIso(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** A UTC ISO string as a value for <input type="datetime-local"> in the browser's time zone. */
export function isoToLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}
