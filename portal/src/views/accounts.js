// Accounts: everyone who acted, most recently active first; an account opens its activities.

import { getAccount, getConnectors, listAccounts } from "../api.js";
import { h, replace } from "../dom.js";
import { formatCount, timeElement } from "../format.js";
import { alertBox, dash, definitionList, errorText, pagedTable } from "../ui.js";
import { activitiesHref, activitiesTable } from "./activities.js";

const TYPES = [
  ["", "All types"],
  ["user", "User"],
  ["servicePrincipal", "Service principal"],
  ["managedIdentity", "Managed identity"],
  ["unknown", "Unknown"],
];
const TYPE_NAMES = new Map(TYPES.filter(([v]) => v));

function accountLabel(account) {
  return account.upn || account.name || account.id;
}

function accountRow(account, subscriptionNames) {
  return h(
    "tr",
    null,
    h("td", null, TYPE_NAMES.get(account.type) || dash(account.type)),
    h(
      "td",
      null,
      h("a", { href: `#/accounts/${encodeURIComponent(account.id)}` }, accountLabel(account)),
      account.name && account.name !== accountLabel(account) ? h("span", { className: "secondary-text" }, account.name) : null,
    ),
    h("td", null, timeElement(h, account.firstSeen)),
    h("td", null, timeElement(h, account.lastSeen)),
    h("td", null, dash(account.lastIpAddress)),
    h("td", { className: "number" }, formatCount(account.activityCount)),
    h("td", null, (account.subscriptions || []).map((id) => subscriptionNames.get(id.toLowerCase()) || id).join(", ") || "—"),
  );
}

async function subscriptionMap() {
  try {
    const items = (await getConnectors()).items || [];
    const subs = items.length ? items[0].subscriptions || [] : [];
    return new Map(subs.map((sub) => [sub.subscriptionId.toLowerCase(), sub.displayName || sub.subscriptionId]));
  } catch {
    return new Map();
  }
}

export async function accountsView(main, { query, navigate }) {
  document.title = "Accounts";
  const heading = h("h1", { tabindex: "-1" }, "Accounts");
  const type = query.get("type") || "";
  replace(main, heading, h("p", { role: "status" }, "Loading…"));
  const subscriptionNames = await subscriptionMap();
  const select = h(
    "select",
    { id: "f-type", name: "type" },
    TYPES.map(([value, label]) => h("option", { value, selected: value === type }, label)),
  );
  const form = h(
    "form",
    { className: "filters", "aria-label": "Filter accounts" },
    h("div", { className: "field" }, h("label", { for: "f-type" }, "Type"), select),
    h("div", { className: "actions" }, h("button", { type: "submit", className: "primary" }, "Apply filter")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(select.value ? `#/accounts?type=${encodeURIComponent(select.value)}` : "#/accounts");
  });
  const table = pagedTable({
    caption: "Accounts, most recently active first",
    columns: ["Type", "UPN or name", "First seen", "Last seen", "Last IP address", "Activities", "Subscriptions"],
    noun: "accounts",
    fetchPage: (continuation) => listAccounts({ type, limit: 50, continuation }),
    renderRow: (account) => accountRow(account, subscriptionNames),
  });
  replace(main, heading, form, table.element);
  table.load();
  return heading;
}

export async function accountView(main, { params, navigate }) {
  document.title = "Account";
  const id = params[0];
  const back = h("nav", { "aria-label": "Breadcrumb", className: "breadcrumb" }, h("a", { href: "#/accounts" }, "Accounts"));
  const heading = h("h1", { tabindex: "-1" }, "Account");
  replace(main, back, heading, h("p", { role: "status" }, "Loading the account…"));
  let account;
  let subscriptionNames;
  try {
    [account, subscriptionNames] = await Promise.all([getAccount(id), subscriptionMap()]);
  } catch (error) {
    replace(main, back, heading, alertBox("Could not load the account.", errorText(error)));
    return heading;
  }
  heading.textContent = `Account: ${accountLabel(account)}`;
  document.title = `Account: ${accountLabel(account)}`;
  const table = activitiesTable(
    { user: account.id },
    {
      subscriptionNames,
      caption: `Activities of ${accountLabel(account)}, newest first`,
      onIp: (ipAddress) => navigate(activitiesHref({ user: account.id, ipAddress })),
    },
  );
  replace(
    main,
    back,
    heading,
    definitionList([
      ["Type", TYPE_NAMES.get(account.type) || dash(account.type)],
      ["UPN", dash(account.upn)],
      ["Name", dash(account.name)],
      ["Account id", h("code", null, account.id)],
      ["Application id", dash(account.appId)],
      ["First seen", timeElement(h, account.firstSeen)],
      ["Last seen", timeElement(h, account.lastSeen)],
      ["Last IP address", dash(account.lastIpAddress)],
      ["Activities", formatCount(account.activityCount)],
      ["Subscriptions", (account.subscriptions || []).map((s) => subscriptionNames.get(s.toLowerCase()) || s).join(", ") || "—"],
    ]),
    h(
      "section",
      { "aria-labelledby": "account-activities" },
      h("h2", { id: "account-activities" }, "Activities"),
      h("p", null, h("a", { href: activitiesHref({ user: account.id }) }, "Open these activities in the Activity log")),
      table.element,
    ),
  );
  table.load();
  return heading;
}
