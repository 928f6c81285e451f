// Alerts: the filters of GET /api/alerts, newest first, more pages on demand; an alert's page with
// the activities that raised it, and resolving or dismissing it with a comment. Everything an alert
// carries from activities (titles, users, resources) is attacker-controlled: it is only ever text.

import { changeAlert, getAlert, listPolicies, searchAlerts } from "../api.js";
import { h, replace } from "../dom.js";
import { formatCount, isoToLocalInput, localInputToIso, timeElement } from "../format.js";
import { alertBox, badge, dash, definitionList, errorText, field, filtersHref, noticeBox, pagedTable, refusal, scrollBox } from "../ui.js";
import { ACTIVITY_COLUMNS, activityRow } from "./activities.js";
import { SEVERITY_NAMES, policyHref } from "./policies.js";

export const ALERT_FILTERS = ["status", "severity", "policyId", "user", "from", "to"];
const STATUS_NAMES = { open: "Open", resolved: "Resolved", dismissed: "Dismissed" };

let flash = null; // a notice shown once, on the next alert page

export function alertsHref(filters) {
  return filtersHref("#/alerts", ALERT_FILTERS, filters);
}

function alertHref(id) {
  return `#/alerts/${encodeURIComponent(id)}`;
}

function severityBadge(severity) {
  return badge(SEVERITY_NAMES[severity] || dash(severity), severity === "high" ? "error" : severity === "medium" ? "warning" : "neutral");
}

function alertStatusBadge(status) {
  return badge(STATUS_NAMES[status] || dash(status), status === "open" ? "warning" : status === "resolved" ? "ok" : "neutral");
}

function userText(user) {
  return (user && (user.upn || user.id)) || null;
}

function alertRow(alert) {
  return h(
    "tr",
    null,
    h("td", { className: "time" }, h("a", { href: alertHref(alert.id) }, timeElement(h, alert.time))),
    h("td", { className: "resource" }, dash(alert.title)),
    h("td", null, severityBadge(alert.severity)),
    h("td", null, alertStatusBadge(alert.status)),
    h("td", null, alert.policyId ? h("a", { href: policyHref(alert.policyId) }, dash(alert.policyName)) : dash(alert.policyName)),
    h("td", { className: "user" }, dash(userText(alert.user))),
    h("td", { className: "number" }, formatCount(alert.activityCount)),
  );
}

function options(entries, selected, allText) {
  return [h("option", { value: "" }, allText), entries.map(([value, text]) => h("option", { value, selected: value === selected }, text))];
}

function filterForm(filters, policies, navigate) {
  const status = h("select", { id: "a-status", name: "status" }, options(Object.entries(STATUS_NAMES), filters.status, "Any status"));
  const severity = h("select", { id: "a-severity", name: "severity" }, options(Object.entries(SEVERITY_NAMES), filters.severity, "Any severity"));
  const policy = h(
    "select",
    { id: "a-policyId", name: "policyId" },
    options(policies.map((p) => [p.id, p.name]), filters.policyId, "Any policy"),
  );
  const user = h("input", { id: "a-user", name: "user", type: "text", value: filters.user || "", autocomplete: "off" });
  const from = h("input", { id: "a-from", name: "from", type: "datetime-local", value: isoToLocalInput(filters.from) });
  const to = h("input", { id: "a-to", name: "to", type: "datetime-local", value: isoToLocalInput(filters.to) });
  const form = h(
    "form",
    { className: "filters", "aria-label": "Filter alerts" },
    field("a-status", "Status", status),
    field("a-severity", "Severity", severity),
    field("a-policyId", "Policy", policy),
    field("a-user", "User (UPN or id)", user),
    field("a-from", "From (your time zone)", from),
    field("a-to", "To (your time zone)", to),
    h(
      "div",
      { className: "actions" },
      h("button", { type: "submit", className: "primary" }, "Apply filters"),
      h("a", { href: "#/alerts", className: "button secondary" }, "Clear filters"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(
      alertsHref({
        status: status.value,
        severity: severity.value,
        policyId: policy.value,
        user: user.value.trim(),
        from: localInputToIso(from.value),
        to: localInputToIso(to.value),
      }),
    );
  });
  return form;
}

export async function alertsView(main, { query, navigate }) {
  document.title = "Alerts";
  const heading = h("h1", { tabindex: "-1" }, "Alerts");
  const filters = {};
  for (const name of ALERT_FILTERS) {
    const value = query.get(name);
    if (value) filters[name] = value;
  }
  replace(main, heading, h("p", { role: "status" }, "Loading…"));
  let policies = [];
  try {
    policies = (await listPolicies()).items || [];
  } catch {
    policies = []; // the policy filter then offers "Any policy" only; the alerts still load
  }
  const names = new Map(policies.map((p) => [p.id, p.name]));
  const described = Object.entries(filters).map(([k, v]) => `${k} ${k === "policyId" && names.has(v) ? names.get(v) : v}`);
  const table = pagedTable({
    caption: described.length ? `Alerts, newest first, filtered by ${described.join(", ")}` : "Alerts, newest first",
    columns: ["Time", "Title", "Severity", "Status", "Policy", "User", "Activities"],
    noun: "alerts",
    fetchPage: (continuation) => searchAlerts({ ...filters, limit: 50, continuation }),
    renderRow: alertRow,
  });
  replace(
    main,
    heading,
    h("p", null, "Alerts are raised by the ", h("a", { href: "#/policies" }, "policies"), " as activities are read."),
    filterForm(filters, policies, navigate),
    table.element,
  );
  table.load();
  return heading;
}

function changeForm(alert, onChanged) {
  const status = h(
    "select",
    { id: "c-status", name: "status" },
    Object.entries({ resolved: "Resolved", dismissed: "Dismissed", open: "Open" }).map(([value, text]) =>
      h("option", { value, selected: value === (alert.status === "open" ? "resolved" : alert.status) }, text),
    ),
  );
  const comment = h("textarea", { id: "c-comment", name: "comment", rows: "3", maxlength: "1024", "aria-describedby": "c-comment-hint" });
  comment.value = alert.comment || "";
  const save = h("button", { type: "submit", className: "primary" }, "Save status");
  const result = h("div", { className: "feedback" });
  const form = h(
    "form",
    { className: "filters", "aria-labelledby": "change-title" },
    field("c-status", "New status", status),
    h(
      "div",
      { className: "field wide" },
      h("label", { for: "c-comment" }, "Comment"),
      comment,
      h("span", { className: "hint", id: "c-comment-hint" }, "Up to 1024 characters; kept with the alert."),
    ),
    h("div", { className: "actions" }, save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const changed = await changeAlert(alert.id, { status: status.value, comment: comment.value });
      onChanged(changed);
    } catch (error) {
      save.disabled = false;
      const box = alertBox(refusal(error, "change alerts", "The alert was not changed."), errorText(error));
      box.setAttribute("tabindex", "-1");
      replace(result, box);
      box.focus();
    }
  });
  return h(
    "section",
    { "aria-labelledby": "change-title" },
    h("h2", { id: "change-title" }, "Resolve or dismiss"),
    h("p", null, "Only a Global Administrator or a Security Administrator can change an alert's status."),
    form,
    result,
  );
}

export async function alertView(main, { params, render }) {
  document.title = "Alert";
  const id = params[0];
  const heading = h("h1", { tabindex: "-1" }, "Alert");
  const back = h("nav", { "aria-label": "Breadcrumb", className: "breadcrumb" }, h("a", { href: "#/alerts" }, "Alerts"));
  replace(main, back, heading, h("p", { role: "status" }, "Loading the alert…"));
  let alert;
  try {
    alert = await getAlert(id);
  } catch (error) {
    replace(main, back, heading, alertBox("Could not load the alert.", errorText(error)));
    return heading;
  }
  const feedback = h("div", { className: "feedback" });
  if (flash) {
    feedback.append(flash);
    flash = null;
  }
  const user = alert.user || {};
  const activities = alert.activities || [];
  const delivery = alert.delivery || {};
  replace(
    main,
    back,
    heading,
    feedback,
    h("p", { className: "alert-heading" }, dash(alert.title)),
    definitionList([
      ["Status", alertStatusBadge(alert.status)],
      ["Severity", severityBadge(alert.severity)],
      ["Policy", alert.policyId ? h("a", { href: policyHref(alert.policyId) }, dash(alert.policyName)) : dash(alert.policyName)],
      ["User", userText(user) ? h("a", { href: `#/accounts/${encodeURIComponent(user.id || user.upn)}` }, userText(user)) : "—"],
      ["First activity", timeElement(h, alert.time)],
      ["Last activity", timeElement(h, alert.lastActivityAt)],
      ["Activities", formatCount(alert.activityCount)],
      ["Raised", timeElement(h, alert.raisedAt)],
      ["Comment", dash(alert.comment)],
      ["Changed", alert.updatedAt ? h("span", null, timeElement(h, alert.updatedAt), ` by ${dash(alert.updatedBy)}`) : "—"],
      ["Webhook", delivery.message ? `${dash(delivery.status)}: ${delivery.message}` : dash(delivery.status)],
    ]),
    h(
      "section",
      { "aria-labelledby": "activities-title" },
      h("h2", { id: "activities-title" }, "Activities that raised it"),
      activities.length
        ? scrollBox(
            "Activities that raised the alert",
            h(
              "table",
              null,
              h("caption", null, `Activities that raised the alert (${activities.length} shown)`),
              h("thead", null, h("tr", null, ACTIVITY_COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
              h("tbody", null, activities.map((item) => activityRow(item, { subscriptionNames: new Map() }))),
            ),
          )
        : h("p", null, "Its activities are no longer stored (retention removed them)."),
    ),
    changeForm(alert, (changed) => {
      flash = noticeBox(`The alert is ${STATUS_NAMES[changed.status].toLowerCase()}.`);
      render();
    }),
  );
  return heading;
}
