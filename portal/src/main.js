// The portal: boots MSAL from config.json, then routes on the fragment (#/connectors, ...).

import { currentAccount, initAuth, signIn, signOut } from "./auth.js";
import { h, replace } from "./dom.js";
import { alertBox } from "./ui.js";
import { accountView, accountsView } from "./views/accounts.js";
import { activitiesView, activityView } from "./views/activities.js";
import { alertView, alertsView } from "./views/alerts.js";
import { addAppView, connectAzureView, connectorsView } from "./views/connectors.js";
import { policiesView, policyView } from "./views/policies.js";
import { troubleshootingView } from "./views/troubleshooting.js";

// [pattern, view, needs a signed-in person, the navigation entry it belongs to]
const ROUTES = [
  [/^connectors$/, connectorsView, true, "connectors"],
  [/^connectors\/add$/, addAppView, true, "connectors"],
  [/^connectors\/azure\/connect$/, connectAzureView, true, "connectors"],
  [/^activities$/, activitiesView, true, "activities"],
  [/^activities\/(.+)$/, activityView, true, "activities"],
  [/^accounts$/, accountsView, true, "accounts"],
  [/^accounts\/(.+)$/, accountView, true, "accounts"],
  [/^policies$/, policiesView, true, "policies"],
  [/^policies\/(.+)$/, policyView, true, "policies"],
  [/^alerts$/, alertsView, true, "alerts"],
  [/^alerts\/(.+)$/, alertView, true, "alerts"],
  [/^troubleshooting$/, troubleshootingView, false, "troubleshooting"],
  [/^troubleshooting\/(.+)$/, troubleshootingView, false, "troubleshooting"],
];

const main = document.getElementById("main");
let renderCount = 0;

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  return { path: path || "connectors", query: new URLSearchParams(query) };
}

function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function renderAccount() {
  const area = document.getElementById("account");
  const account = currentAccount();
  if (!account) {
    replace(area);
    return;
  }
  const button = h("button", { type: "button", className: "secondary" }, "Sign out");
  button.addEventListener("click", async () => {
    await signOut();
    renderAccount();
    render();
  });
  replace(area, h("span", { className: "who" }, "Signed in as ", h("strong", null, account.name || account.username), account.name ? ` (${account.username})` : ""), button);
}

function markNavigation(section) {
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function signInView(route) {
  document.title = "Sign in";
  const heading = h("h1", { tabindex: "-1" }, "Sign in");
  const button = h("button", { type: "button", className: "primary" }, "Sign in with Microsoft");
  button.addEventListener("click", () => {
    button.disabled = true;
    signIn(route).catch((error) => {
      button.disabled = false;
      main.append(alertBox("Sign-in did not start.", String(error && error.message ? error.message : error)));
    });
  });
  replace(
    main,
    heading,
    h("p", null, "Sign in with your organisation's Microsoft Entra ID account to see the App connectors, the activity log, the accounts, the policies and their alerts."),
    button,
  );
  return heading;
}

async function render() {
  const current = ++renderCount;
  delete document.body.dataset.ready;
  const { path, query } = parseHash();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  let focusTarget;
  if (!route) {
    markNavigation(null);
    document.title = "Not found";
    focusTarget = h("h1", { tabindex: "-1" }, "Page not found");
    replace(main, focusTarget, h("p", null, h("a", { href: "#/connectors" }, "Go to the App connectors")));
  } else {
    const [pattern, view, needsSignIn, section] = route;
    markNavigation(section);
    if (needsSignIn && !currentAccount()) {
      focusTarget = signInView(window.location.hash || "#/connectors");
    } else {
      main.setAttribute("aria-busy", "true");
      try {
        // A malformed escape (#/activities/%E0) throws here: the page says it failed, and is ready.
        const params = pattern.exec(path).slice(1).map(decodeURIComponent);
        focusTarget = await view(main, { params, query, navigate, render });
      } catch (error) {
        focusTarget = h("h1", { tabindex: "-1" }, "This page failed");
        replace(main, focusTarget, alertBox("Something went wrong.", String(error && error.message ? error.message : error)));
      } finally {
        main.removeAttribute("aria-busy");
      }
    }
  }
  if (current !== renderCount) return; // a newer navigation replaced this one
  document.title = `${document.title} · App connector portal`;
  if (focusTarget && renderCount > 1) focusTarget.focus();
  else if (focusTarget && focusTarget.id && focusTarget.tagName === "H2") focusTarget.focus();
  document.body.dataset.ready = path;
}

async function boot() {
  let config;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`config.json answered ${response.status}`);
    config = await response.json();
  } catch (error) {
    replace(main, h("h1", null, "The portal cannot start"), alertBox("Its configuration could not be loaded.", String(error.message || error)));
    return;
  }
  let returnRoute = null;
  try {
    returnRoute = await initAuth(config);
  } catch (error) {
    main.append(alertBox("Sign-in failed.", String(error && error.message ? error.message : error)));
  }
  if (window.location.search || returnRoute !== null) {
    // Drop the authority's answer (code, state) from the address; go back where sign-in started.
    const hash = returnRoute && returnRoute.startsWith("#/") ? returnRoute : window.location.hash;
    window.history.replaceState(null, "", window.location.pathname + hash);
  }
  renderAccount();
  window.addEventListener("hashchange", render);
  await render();
}

boot();
