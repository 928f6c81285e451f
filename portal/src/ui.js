// Shared pieces of the views: status badges, alerts, definition lists, paged tables.

import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

const STATUS_CLASSES = {
  Connected: "ok",
  OK: "ok",
  Warning: "warning",
  Error: "error",
  Disconnected: "neutral",
  Inactive: "neutral",
};

/** Words with a colour (ok, warning, error, neutral): the words carry the meaning; the colour only repeats it. */
export function badge(text, kind) {
  return h("span", { className: `status status-${kind}` }, text);
}

/** A connector's or a subscription's status as a badge. */
export function statusBadge(status) {
  return badge(status || "Unknown", STATUS_CLASSES[status] || "neutral");
}

/** The link to a listing with these filters (only those named, in that order). */
export function filtersHref(route, names, filters) {
  const query = new URLSearchParams();
  for (const name of names) if (filters[name]) query.set(name, filters[name]);
  const text = query.toString();
  return text ? `${route}?${text}` : route;
}

/** A labelled form control. */
export function field(id, label, control) {
  return h("div", { className: "field" }, h("label", { for: id }, label), control);
}

/** The title of a failed change: a 403 says the person may not (`You cannot ${what}.`), anything else `otherwise`. */
export function refusal(error, what, otherwise) {
  return error instanceof ApiError && error.status === 403 ? `You cannot ${what}.` : otherwise;
}

export function troubleshootingHref(code) {
  return code ? `#/troubleshooting/${encodeURIComponent(code)}` : "#/troubleshooting";
}

/** A status message with a link to its cause and fix. */
export function messageWithFix(message, code) {
  if (!message) return "—";
  return h(
    "span",
    { className: "message" },
    h("span", null, message),
    " ",
    h("a", { href: troubleshootingHref(code), className: "fix-link" }, "How to fix this"),
  );
}

/** The text of an error for people: the API's own message. */
export function errorText(error) {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong in this page. Reload it and try again.";
}

export function alertBox(title, message, ...extra) {
  return h("div", { className: "alert alert-error", role: "alert" }, h("p", { className: "alert-title" }, title), h("p", null, message), ...extra);
}

export function noticeBox(message) {
  return h("div", { className: "alert alert-info", role: "status" }, h("p", null, message));
}

/**
 * Ask before a destructive action, in a modal dialog (Cancel has the focus). On the confirm button,
 * `run()` is awaited, the dialog closes and `onDone(error)` is called (`error` null when it worked).
 */
export function confirmDialog({ name, title, text, confirmLabel, run, onDone }) {
  const cancel = h("button", { type: "button", className: "secondary" }, "Cancel");
  const confirm = h("button", { type: "button", className: "danger" }, confirmLabel);
  const dialog = h(
    "dialog",
    { "aria-labelledby": `${name}-title`, "aria-describedby": `${name}-text`, className: "dialog" },
    h("h2", { id: `${name}-title` }, title),
    h("p", { id: `${name}-text` }, ...text),
    h("div", { className: "actions" }, confirm, cancel),
  );
  cancel.addEventListener("click", () => dialog.close("cancel"));
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    cancel.disabled = true;
    let error = null;
    try {
      await run();
    } catch (e) {
      error = e;
    }
    dialog.close("done");
    onDone(error);
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  cancel.focus();
}

/** A table in a box that scrolls sideways on narrow screens (and can be scrolled by keyboard). */
export function scrollBox(label, table) {
  return h("div", { className: "scroll", tabindex: "0", role: "region", "aria-label": `${label} (table)` }, table);
}

export function definitionList(rows) {
  return h(
    "dl",
    { className: "details" },
    rows.map(([term, value]) => [h("dt", null, term), h("dd", null, value ?? "—")]),
  );
}

export function dash(value) {
  return value === null || value === undefined || value === "" ? "—" : value;
}

/**
 * A table filled page by page: `fetchPage(continuation)` answers {items, continuation}. A page can
 * be empty and still carry a token, so loading follows tokens until it has rows or none is left.
 */
export function pagedTable({ caption, columns, fetchPage, renderRow, noun = "items", emptyText }) {
  const tbody = h("tbody");
  const status = h("p", { className: "table-status", role: "status" });
  const more = h("button", { type: "button", className: "secondary", hidden: true }, `Show more ${noun}`);
  const table = h(
    "table",
    null,
    h("caption", null, caption),
    h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  let continuation = null;
  let shown = 0;

  async function load() {
    more.disabled = true;
    status.textContent = `Loading ${noun}…`;
    try {
      let added = 0;
      let pages = 0;
      do {
        const page = await fetchPage(continuation);
        for (const item of page.items || []) tbody.append(renderRow(item));
        added += (page.items || []).length;
        continuation = page.continuation || null;
        pages += 1;
      } while (continuation && added === 0 && pages < 20);
      shown += added;
      more.hidden = !continuation;
      more.disabled = false;
      if (shown === 0) status.textContent = emptyText || `No ${noun} found.`;
      else status.textContent = `Showing ${shown} ${noun}${continuation ? "; more are available" : ""}.`;
    } catch (error) {
      more.disabled = false;
      replace(status, alertBox(`Could not load the ${noun}.`, errorText(error)));
    }
  }

  more.addEventListener("click", () => {
    const before = tbody.rows.length;
    load().then(() => {
      // Keep keyboard focus useful: on the first new row's link, else on the status.
      const row = tbody.rows[before];
      const target = row && row.querySelector("a, button");
      if (target) target.focus();
    });
  });

  const element = h("div", { className: "table-wrap" }, scrollBox(caption, table), status, more);
  return { element, load };
}
