// Activity log: the filters of GET /api/activities, newest first, more pages on demand; a row opens
// the activity with its raw event; a user or an IP address in a row filters by it.

import { getActivity, getConnectors, searchActivities } from "../api.js";
import { h, replace } from "../dom.js";
import { isoToLocalInput, localInputToIso, timeElement } from "../format.js";
import { alertBox, badge, dash, definitionList, errorText, field, filtersHref, pagedTable } from "../ui.js";

export const FILTERS = ["user", "subscriptionId", "action", "status", "ipAddress", "from", "to"];

export function activitiesHref(filters) {
  return filtersHref("#/activities", FILTERS, filters);
}

function userText(user) {
  if (!user) return null;
  return user.upn || user.name || user.id || null;
}

function userKey(user) {
  if (!user) return null;
  return user.upn || user.id || null;
}

function filterButton(label, value, onFilter) {
  const button = h("button", { type: "button", className: "link-button" }, h("span", { className: "visually-hidden" }, `${label}: `), value);
  button.addEventListener("click", () => onFilter(value));
  return button;
}

/** The rows of activities, shared by the Activity log and an account's page. */
export function activityRow(item, { onUser, onIp, subscriptionNames }) {
  const who = userText(item.user);
  const key = userKey(item.user);
  const subName = subscriptionNames.get((item.subscriptionId || "").toLowerCase());
  return h(
    "tr",
    null,
    h("td", { className: "time" }, h("a", { href: `#/activities/${encodeURIComponent(item.id)}` }, timeElement(h, item.timestamp))),
    h(
      "td",
      { className: "user" },
      key && onUser ? filterButton("Show activities of user", key, onUser) : dash(who),
      item.user && item.user.name && item.user.name !== key ? h("span", { className: "secondary-text" }, item.user.name) : null,
    ),
    h("td", null, h("span", null, dash(item.actionName || item.action)), item.actionName ? h("span", { className: "secondary-text" }, item.action) : null),
    h("td", { className: "resource" }, dash(item.resourceId)),
    h("td", null, item.status ? statusText(item.status) : "—"),
    h("td", null, item.ipAddress && onIp ? filterButton("Show activities from IP address", item.ipAddress, onIp) : dash(item.ipAddress)),
    h("td", null, subName || dash(item.subscriptionId)),
  );
}

function statusText(status) {
  return badge(status, /fail/i.test(status) ? "error" : /succe/i.test(status) ? "ok" : "neutral");
}

export const ACTIVITY_COLUMNS = ["Time", "User", "Action", "Resource", "Status", "IP address", "Subscription"];

async function subscriptionMap() {
  try {
    const items = (await getConnectors()).items || [];
    const subs = items.length ? items[0].subscriptions || [] : [];
    return new Map(subs.map((sub) => [sub.subscriptionId.toLowerCase(), sub.displayName || sub.subscriptionId]));
  } catch {
    return new Map();
  }
}

function filterForm(filters, subscriptionNames, navigate) {
  const input = (name, type = "text", value = filters[name] || "") =>
    h("input", { id: `f-${name}`, name, type, value, autocomplete: "off" });
  const user = input("user");
  const action = input("action");
  const status = input("status");
  status.setAttribute("list", "status-values");
  const ip = input("ipAddress");
  const from = input("from", "datetime-local", isoToLocalInput(filters.from));
  const to = input("to", "datetime-local", isoToLocalInput(filters.to));
  let subscription;
  if (subscriptionNames.size) {
    subscription = h(
      "select",
      { id: "f-subscriptionId", name: "subscriptionId" },
      h("option", { value: "" }, "All subscriptions"),
      [...subscriptionNames].map(([id, name]) =>
        h("option", { value: id, selected: (filters.subscriptionId || "").toLowerCase() === id }, `${name} (${id})`),
      ),
    );
  } else {
    subscription = input("subscriptionId");
  }
  const form = h(
    "form",
    { className: "filters", "aria-label": "Filter activities" },
    field("f-user", "User (UPN or id)", user),
    field("f-subscriptionId", "Subscription", subscription),
    field("f-action", "Action (operation name)", action),
    field("f-status", "Status", status),
    h("datalist", { id: "status-values" }, ["Succeeded", "Failed", "Started", "Accepted"].map((v) => h("option", { value: v }))),
    field("f-ipAddress", "IP address", ip),
    field("f-from", "From (your time zone)", from),
    field("f-to", "To (your time zone)", to),
    h(
      "div",
      { className: "actions" },
      h("button", { type: "submit", className: "primary" }, "Apply filters"),
      h("a", { href: "#/activities", className: "button secondary" }, "Clear filters"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(
      activitiesHref({
        user: user.value.trim(),
        subscriptionId: subscription.value.trim(),
        action: action.value.trim(),
        status: status.value.trim(),
        ipAddress: ip.value.trim(),
        from: localInputToIso(from.value),
        to: localInputToIso(to.value),
      }),
    );
  });
  return form;
}

export function activitiesTable(filters, { subscriptionNames, onUser, onIp, caption, pageSize = 50 }) {
  return pagedTable({
    caption,
    columns: ACTIVITY_COLUMNS,
    noun: "activities",
    fetchPage: (continuation) => searchActivities({ ...filters, limit: pageSize, continuation }),
    renderRow: (item) => activityRow(item, { onUser, onIp, subscriptionNames }),
  });
}

export async function activitiesView(main, { query, navigate }) {
  document.title = "Activity log";
  const heading = h("h1", { tabindex: "-1" }, "Activity log");
  const filters = {};
  for (const name of FILTERS) {
    const value = query.get(name);
    if (value) filters[name] = value;
  }
  replace(main, heading, h("p", { role: "status" }, "Loading…"));
  const subscriptionNames = await subscriptionMap();
  const active = Object.entries(filters);
  const table = activitiesTable(filters, {
    subscriptionNames,
    caption: active.length ? `Activities, newest first, filtered by ${active.map(([k, v]) => `${k} ${v}`).join(", ")}` : "Activities, newest first",
    onUser: (user) => navigate(activitiesHref({ ...filters, user })),
    onIp: (ipAddress) => navigate(activitiesHref({ ...filters, ipAddress })),
  });
  replace(main, heading, filterForm(filters, subscriptionNames, navigate), table.element);
  table.load();
  return heading;
}

export async function activityView(main, { params }) {
  document.title = "Activity";
  const id = params[0];
  const heading = h("h1", { tabindex: "-1" }, "Activity");
  const back = h("nav", { "aria-label": "Breadcrumb", className: "breadcrumb" }, h("a", { href: "#/activities" }, "Activity log"));
  replace(main, back, heading, h("p", { role: "status" }, "Loading the activity…"));
  let item;
  try {
    item = await getActivity(id);
  } catch (error) {
    replace(main, back, heading, alertBox("Could not load the activity.", errorText(error)));
    return heading;
  }
  const user = item.user || {};
  const userLink = userKey(user)
    ? h("a", { href: `#/accounts/${encodeURIComponent(user.id || user.upn)}` }, userText(user))
    : "—";
  replace(
    main,
    back,
    heading,
    definitionList([
      ["Time", timeElement(h, item.timestamp)],
      ["Action", `${dash(item.actionName)} (${dash(item.action)})`],
      ["Status", item.status ? h("span", null, statusText(item.status), item.subStatus ? ` ${item.subStatus}` : "") : "—"],
      ["User", userLink],
      ["User type", dash(user.type)],
      ["IP address", item.ipAddress ? h("a", { href: activitiesHref({ ipAddress: item.ipAddress }) }, item.ipAddress) : "—"],
      ["Resource", h("span", { className: "resource" }, dash(item.resourceId))],
      ["Resource group", dash(item.resourceGroup)],
      ["Resource type", dash(item.resourceType)],
      ["Subscription", dash(item.subscriptionId)],
      ["Category", dash(item.category)],
      ["Level", dash(item.level)],
      ["Correlation id", dash(item.correlationId)],
      ["Read by the connector", timeElement(h, item.ingestedAt)],
      ["Activity id", h("code", null, item.id)],
    ]),
    h(
      "section",
      { "aria-labelledby": "raw-title" },
      h("h2", { id: "raw-title" }, "Raw event"),
      h("p", null, "The event as Azure Resource Manager returned it."),
      h("pre", { className: "raw", tabindex: "0", "aria-labelledby": "raw-title" }, JSON.stringify(item.raw, null, 2)),
    ),
  );
  return heading;
}
