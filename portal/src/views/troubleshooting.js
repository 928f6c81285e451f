// Troubleshooting: every message the connector can show, with its cause and fix. The list comes
// from the API, which generates it from the catalog the connector builds its messages with.

import { troubleshooting } from "../api.js";
import { h, replace } from "../dom.js";
import { alertBox, errorText } from "../ui.js";

export function anchorId(code) {
  return `ts-${code}`;
}

export async function troubleshootingView(main, { params }) {
  document.title = "Troubleshooting App Connectors";
  const heading = h("h1", { tabindex: "-1" }, "Troubleshooting App Connectors using error messages");
  replace(main, heading, h("p", { role: "status" }, "Loading…"));
  let items;
  try {
    items = (await troubleshooting()).items || [];
  } catch (error) {
    replace(main, heading, alertBox("Could not load the troubleshooting guide.", errorText(error)));
    return heading;
  }
  const toc = h(
    "nav",
    { "aria-label": "Messages", className: "toc" },
    h("ul", null, items.map((item) => h("li", null, h("a", { href: `#/troubleshooting/${encodeURIComponent(item.code)}` }, item.title)))),
  );
  const articles = items.map((item) =>
    h(
      "article",
      { className: "trouble", "aria-labelledby": anchorId(item.code) },
      h("h2", { id: anchorId(item.code), tabindex: "-1" }, item.title),
      h(
        "dl",
        { className: "details" },
        h("dt", null, "The connector shows"),
        h("dd", null, h("q", null, item.message)),
        h("dt", null, "Cause"),
        h("dd", null, item.cause),
        h("dt", null, "Fix"),
        h("dd", null, item.fix),
        h("dt", null, "Code"),
        h("dd", null, h("code", null, item.code)),
      ),
    ),
  );
  replace(
    main,
    heading,
    h("p", null, "Each message the App connector can show, what causes it and how to fix it. The status messages on the App connectors page link here."),
    toc,
    articles,
  );
  const code = params[0];
  if (code) {
    const target = document.getElementById(anchorId(code));
    if (target) return target;
  }
  return heading;
}
