// App connectors: the Azure connector's row and subscriptions, "+ Connect an app", the
// "Connect Microsoft Azure" page, and disconnecting with a confirmation dialog.

import { activityPerDay, connectAzure, disconnectAzure, getConnectors } from "../api.js";
import { h, replace } from "../dom.js";
import { formatCount, timeElement } from "../format.js";
import { alertBox, confirmDialog, dash, errorText, messageWithFix, noticeBox, refusal, scrollBox, statusBadge } from "../ui.js";
import { activityChart } from "./chart.js";

let flash = null; // a notice shown once, on the next App connectors page

function connectorRow(connector) {
  return h(
    "tr",
    null,
    h("th", { scope: "row" }, connector.app || "Microsoft Azure"),
    h("td", null, statusBadge(connector.status)),
    h("td", null, messageWithFix(connector.message, connector.messageCode)),
    h("td", null, timeElement(h, connector.connectedAt)),
    h("td", null, dash(connector.connectedBy)),
    h("td", null, timeElement(h, connector.lastSuccessAt)),
  );
}

function subscriptionRow(sub) {
  return h(
    "tr",
    null,
    h("th", { scope: "row" }, dash(sub.displayName)),
    h("td", null, h("code", null, sub.subscriptionId)),
    h("td", null, dash(sub.state)),
    h("td", null, statusBadge(sub.status)),
    h("td", null, messageWithFix(sub.message, sub.messageCode)),
    h("td", null, timeElement(h, sub.lastPulledAt)),
    h(
      "td",
      { className: "number" },
      h(
        "a",
        { href: `#/activities?subscriptionId=${encodeURIComponent(sub.subscriptionId)}` },
        formatCount(sub.activities),
        h("span", { className: "visually-hidden" }, ` activities in ${sub.displayName || sub.subscriptionId}`),
      ),
    ),
    h("td", { className: "number" }, formatCount(sub.skippedEvents)),
  );
}

function subscriptionsTable(subs) {
  if (!subs || subs.length === 0) return h("p", null, "No subscription is recorded yet.");
  return scrollBox(
    "Subscriptions",
    h(
      "table",
      null,
      h("caption", null, "Subscriptions of the Microsoft Azure connector"),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Name", "Subscription ID", "State", "Status", "Message and fix", "Last pulled", "Activities", "Skipped events"].map(
            (c) => h("th", { scope: "col" }, c),
          ),
        ),
      ),
      h("tbody", null, subs.map(subscriptionRow)),
    ),
  );
}

export async function connectorsView(main, { render }) {
  document.title = "App connectors";
  const heading = h("h1", { tabindex: "-1" }, "App connectors");
  const addLink = h("a", { href: "#/connectors/add", className: "button" }, "+ Connect an app");
  const feedback = h("div", { className: "feedback" });
  if (flash) {
    feedback.append(flash);
    flash = null;
  }
  const body = h("div", null, h("p", { role: "status" }, "Loading the App connectors…"));
  replace(main, heading, h("div", { className: "toolbar" }, addLink), feedback, body);

  let connectors;
  try {
    connectors = (await getConnectors()).items || [];
  } catch (error) {
    replace(body, alertBox("Could not load the App connectors.", errorText(error)));
    return heading;
  }
  if (connectors.length === 0) {
    replace(
      body,
      h("p", null, "No app is connected yet. Choose “+ Connect an app” and then Microsoft Azure to start."),
    );
    return heading;
  }
  const azure = connectors[0];
  const actions = h("div", { className: "actions" });
  if (azure.status === "Disconnected") {
    actions.append(h("a", { href: "#/connectors/azure/connect", className: "button" }, "Connect Microsoft Azure again"));
  } else {
    const disconnect = h("button", { type: "button", className: "danger" }, "Disconnect Microsoft Azure");
    disconnect.addEventListener("click", () => {
      confirmDialog({
        name: "disconnect",
        title: "Disconnect Microsoft Azure?",
        text: [
          "The connector stops reading activities from every subscription. The activities and accounts already stored are kept. You can connect again later; only activities from then on are read.",
        ],
        confirmLabel: "Disconnect",
        run: disconnectAzure,
        onDone: (error) => {
          if (error) {
            flash = alertBox("Microsoft Azure was not disconnected.", errorText(error));
          } else {
            flash = noticeBox("Microsoft Azure is disconnected. Its stored activities and accounts are kept.");
          }
          render();
        },
      });
    });
    actions.append(disconnect);
  }

  const chartSection = h(
    "section",
    { "aria-labelledby": "chart-title" },
    h("h2", { id: "chart-title" }, "Activities per day, last 30 days"),
    h("p", { role: "status" }, "Loading the chart…"),
  );
  replace(
    body,
    scrollBox(
      "Connected apps",
      h(
        "table",
        null,
        h("caption", null, "Connected apps"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["App", "Status", "Message", "Connected at", "Connected by", "Last successful pull"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        h("tbody", null, connectorRow(azure)),
      ),
    ),
    actions,
    h(
      "section",
      { "aria-labelledby": "subs-title" },
      h("h2", { id: "subs-title" }, "Subscriptions"),
      subscriptionsTable(azure.subscriptions),
    ),
    chartSection,
  );
  activityPerDay(30).then(
    (data) => replace(chartSection, chartSection.firstChild, activityChart(data)),
    (error) =>
      replace(chartSection, chartSection.firstChild, alertBox("Could not load the activities per day.", errorText(error))),
  );
  return heading;
}

export async function addAppView(main) {
  document.title = "Connect an app";
  const heading = h("h1", { tabindex: "-1" }, "Connect an app");
  replace(
    main,
    h("nav", { "aria-label": "Breadcrumb", className: "breadcrumb" }, h("a", { href: "#/connectors" }, "App connectors")),
    heading,
    h("p", null, "Choose the app to connect."),
    h(
      "ul",
      { className: "app-list" },
      h(
        "li",
        null,
        h("a", { href: "#/connectors/azure/connect", className: "app-card" }, h("span", { className: "app-name" }, "Microsoft Azure"), h("span", null, "Activities of Azure Resource Manager in every subscription")),
      ),
    ),
  );
  return heading;
}

export async function connectAzureView(main, { navigate }) {
  document.title = "Connect Microsoft Azure";
  const heading = h("h1", { tabindex: "-1" }, "Connect Microsoft Azure");
  const result = h("div", { className: "feedback" });
  const button = h("button", { type: "button", className: "primary" }, "Connect Microsoft Azure");
  replace(
    main,
    h(
      "nav",
      { "aria-label": "Breadcrumb", className: "breadcrumb" },
      h("a", { href: "#/connectors" }, "App connectors"),
      " › ",
      h("a", { href: "#/connectors/add" }, "Connect an app"),
    ),
    heading,
    h("p", null, "Connecting lets this service read who does what in your organisation's Azure:"),
    h(
      "ul",
      null,
      h("li", null, "Only a Global Administrator or a Security Administrator can connect or disconnect."),
      h("li", null, "Every subscription the connector's identity can read is connected, and subscriptions added later join on their own."),
      h("li", null, "Accounts are filled in as people and applications act; nothing is imported from the directory."),
      h("li", null, "Only Azure Resource Manager activities are kept (the Administrative category); other events are counted as skipped."),
      h("li", null, "Data is read from the moment you connect on; nothing from before is imported."),
    ),
    h(
      "p",
      null,
      "The connector's identity needs the Reader role on the subscriptions (for example at the tenant root management group). If it cannot read them, the status says so and how to fix it.",
    ),
    h("div", { className: "actions" }, button),
    result,
  );

  button.addEventListener("click", async () => {
    button.disabled = true;
    replace(result, h("p", { role: "status" }, "Connecting…"));
    try {
      const { status, body } = await connectAzure();
      if (status === 502 || (body && body.status === "Error")) {
        const message = (body && body.message) || "The connector could not read Azure.";
        replace(
          result,
          h(
            "div",
            { className: "alert alert-error", role: "alert", tabindex: "-1" },
            h("p", { className: "alert-title" }, "Status: ", statusBadge("Error")),
            h("p", null, messageWithFix(message, body && body.messageCode)),
            h("p", null, h("a", { href: "#/connectors" }, "See the App connectors")),
          ),
        );
        button.disabled = false;
        result.firstChild.focus();
        return;
      }
      flash = noticeBox(`Microsoft Azure is connected. Status: ${body.status}.`);
      navigate("#/connectors");
    } catch (error) {
      const title = refusal(error, "connect Microsoft Azure", "Microsoft Azure was not connected.");
      const box = alertBox(title, errorText(error));
      box.setAttribute("tabindex", "-1");
      replace(result, box);
      button.disabled = false;
      box.focus();
    }
  });
  return heading;
}
