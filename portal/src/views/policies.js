// Policies: the list, "New policy from a template", and a policy's page with its definition as a
// form (the API's 400 shown next to the form and at the field it names), enable/disable and delete.

import {
  ApiError,
  createPolicy,
  deletePolicy,
  getPolicy,
  listPolicies,
  listPolicyTemplates,
  updatePolicy,
} from "../api.js";
import { h, replace } from "../dom.js";
import { timeElement } from "../format.js";
import { alertBox, badge, confirmDialog, dash, definitionList, errorText, noticeBox, refusal, scrollBox } from "../ui.js";

let flash = null; // a notice shown once, on the next policies page

export const KIND_NAMES = { singleActivity: "Each matching activity", repeatedActivity: "Repeated activity" };
export const SEVERITY_NAMES = { low: "Low", medium: "Medium", high: "High" };
const STATE_STATUS = { enabled: "Enabled", disabled: "Disabled", paused: "Paused" };

// The list fields of a filter, as the API names them, with their labels (one value per line).
const LIST_FIELDS = [
  ["users", "Users (object id or UPN)"],
  ["actions", "Actions (wildcards * and ?)"],
  ["statuses", "Statuses (Succeeded, Failed...)"],
  ["subscriptions", "Subscriptions (id)"],
  ["resourceGroups", "Resource groups"],
  ["resourceProviders", "Resource providers (wildcards)"],
  ["resourceTypes", "Resource types (wildcards)"],
  ["categories", "Categories"],
  ["ipInRanges", "IP address in ranges (address or CIDR)"],
  ["ipNotInRanges", "IP address outside ranges (address or CIDR)"],
];
const CHOICE_FIELDS = [
  ["userTypes", "User types", [["user", "User"], ["servicePrincipal", "Service principal"], ["managedIdentity", "Managed identity"], ["unknown", "Unknown"]]],
  ["actionTypes", "Action types", [["write", "Write"], ["delete", "Delete"], ["action", "Action"], ["read", "Read"], ["other", "Other"]]],
];

export function policyHref(id) {
  return `#/policies/${encodeURIComponent(id)}`;
}

function stateBadge(policy) {
  return badge(STATE_STATUS[policy.state] || policy.state, policy.state === "enabled" ? "ok" : policy.state === "paused" ? "warning" : "neutral");
}

/** The definition a PUT takes back, from a stored policy. */
export function definitionOf(policy) {
  return {
    name: policy.name,
    description: policy.description ?? null,
    severity: policy.severity,
    enabled: policy.enabled,
    kind: policy.kind,
    filter: policy.filter || {},
    repeated: policy.kind === "repeatedActivity" ? policy.repeated : null,
    webhookUrl: policy.webhookUrl ?? null,
  };
}

function policyRow(policy) {
  return h(
    "tr",
    null,
    h("th", { scope: "row" }, h("a", { href: policyHref(policy.id) }, policy.name)),
    h("td", null, KIND_NAMES[policy.kind] || policy.kind),
    h("td", null, SEVERITY_NAMES[policy.severity] || policy.severity),
    h(
      "td",
      null,
      stateBadge(policy),
      policy.state === "paused" && policy.pausedMessage ? h("span", { className: "paused-message" }, policy.pausedMessage) : null,
    ),
    h("td", null, timeElement(h, policy.createdAt), h("span", { className: "secondary-text" }, dash(policy.createdBy))),
    h("td", null, timeElement(h, policy.updatedAt), h("span", { className: "secondary-text" }, dash(policy.updatedBy))),
  );
}

function templateForm(templates, navigate) {
  const select = h(
    "select",
    { id: "template", name: "templateId", required: true },
    templates.map((t) => h("option", { value: t.id }, `${t.definition.name} (${KIND_NAMES[t.definition.kind] || t.definition.kind}, ${SEVERITY_NAMES[t.definition.severity] || t.definition.severity})`)),
  );
  const description = h("p", { id: "template-description", className: "secondary-text" });
  const showDescription = () => {
    const chosen = templates.find((t) => t.id === select.value);
    description.textContent = (chosen && chosen.definition.description) || "";
  };
  select.addEventListener("change", showDescription);
  showDescription();
  select.setAttribute("aria-describedby", "template-description");
  const button = h("button", { type: "submit", className: "primary" }, "Create policy");
  const result = h("div", { className: "feedback" });
  const form = h(
    "form",
    { className: "filters" },
    h("div", { className: "field wide" }, h("label", { for: "template" }, "Template"), select, description),
    h("div", { className: "actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    replace(result, h("p", { role: "status" }, "Creating the policy…"));
    try {
      const policy = await createPolicy({ templateId: select.value });
      flash = noticeBox(`The policy “${policy.name}” is created from its template. Review it and save any change.`);
      navigate(policyHref(policy.id));
    } catch (error) {
      const box = alertBox(refusal(error, "create policies", "The policy was not created."), errorText(error));
      box.setAttribute("tabindex", "-1");
      replace(result, box);
      button.disabled = false;
      box.focus();
    }
  });
  return h(
    "section",
    { "aria-labelledby": "new-title" },
    h("h2", { id: "new-title" }, "New policy from a template"),
    h("p", null, "A policy made from a template is an ordinary policy: you can change everything in it afterwards."),
    form,
    result,
  );
}

export async function policiesView(main, { navigate }) {
  document.title = "Policies";
  const heading = h("h1", { tabindex: "-1" }, "Policies");
  const feedback = h("div", { className: "feedback" });
  if (flash) {
    feedback.append(flash);
    flash = null;
  }
  const body = h("div", null, h("p", { role: "status" }, "Loading the policies…"));
  replace(main, heading, feedback, body);
  let policies;
  let templates;
  try {
    [policies, templates] = await Promise.all([
      listPolicies().then((r) => r.items || []),
      listPolicyTemplates().then((r) => r.items || []),
    ]);
  } catch (error) {
    replace(body, alertBox("Could not load the policies.", errorText(error)));
    return heading;
  }
  const list = policies.length
    ? scrollBox(
        "Policies",
        h(
          "table",
          null,
          h("caption", null, "Policies, oldest first"),
          h(
            "thead",
            null,
            h("tr", null, ["Name", "Kind", "Severity", "State", "Created", "Changed"].map((c) => h("th", { scope: "col" }, c))),
          ),
          h("tbody", null, policies.map(policyRow)),
        ),
      )
    : h("p", null, "No policy yet. Create one from a template below.");
  replace(
    body,
    h("p", null, "A policy raises an alert when the activities the connector stores match it. ", h("a", { href: "#/alerts" }, "See the alerts")),
    list,
    templateForm(templates, navigate),
  );
  return heading;
}

// --- a policy's page ------------------------------------------------------------------------------

function fieldId(path) {
  return `p-${path.replace(/\.\d+(?=\.|$)/g, "").replace(/\./g, "-")}`;
}

function textField(path, label, value, { type = "text", hint, ...attrs } = {}) {
  const id = fieldId(path);
  const input = h("input", { id, name: path, type, value: value ?? "", autocomplete: "off", ...attrs });
  return h("div", { className: "field", dataset: { path } }, h("label", { for: id }, label), input, hint ? h("span", { className: "hint", id: `${id}-hint` }, hint) : null);
}

/** The webhook URL; a reader who is no administrator gets only its host from the API, and is told so. */
function webhookField(policy) {
  const hidden = policy.webhookUrl === undefined && policy.webhookHost;
  const hint = hidden ? `Alerts are sent to ${policy.webhookHost}; only administrators see the whole URL.` : undefined;
  const attrs = { type: "url", className: "wide-input", hint };
  if (hint) attrs["aria-describedby"] = `${fieldId("webhookUrl")}-hint`;
  return textField("webhookUrl", "Webhook URL (https://, optional)", policy.webhookUrl, attrs);
}

function linesField(path, label, values) {
  const id = fieldId(path);
  const area = h("textarea", { id, name: path, rows: "2", "aria-describedby": "lines-hint" });
  area.value = (values || []).join("\n");
  return h("div", { className: "field", dataset: { path } }, h("label", { for: id }, label), area);
}

function choiceField(path, legend, choices, selected) {
  const id = fieldId(path);
  return h(
    "fieldset",
    { className: "field choices", id, dataset: { path } },
    h("legend", null, legend),
    choices.map(([value, text]) =>
      h("label", { className: "choice" }, h("input", { type: "checkbox", name: path, value, checked: (selected || []).includes(value) }), ` ${text}`),
    ),
  );
}

function checkboxField(path, label, checked) {
  const id = fieldId(path);
  return h("div", { className: "field checkbox", dataset: { path } }, h("label", { for: id }, h("input", { id, name: path, type: "checkbox", checked: Boolean(checked) }), ` ${label}`));
}

function selectField(path, label, value, options) {
  const id = fieldId(path);
  return h(
    "div",
    { className: "field", dataset: { path } },
    h("label", { for: id }, label),
    h("select", { id, name: path }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
  );
}

function definitionForm(policy) {
  const filter = policy.filter || {};
  const repeated = policy.repeated || { count: 10, windowMinutes: 10, sameAction: false };
  const description = h("textarea", { id: fieldId("description"), name: "description", rows: "2" });
  description.value = policy.description || "";
  const repeatedSet = h(
    "fieldset",
    { className: "group", id: "p-repeated" },
    h("legend", null, "Repeated activity"),
    h(
      "div",
      { className: "grid" },
      textField("repeated.count", "Count (2-100 activities)", repeated.count, { type: "number", min: "2", max: "100", inputmode: "numeric" }),
      textField("repeated.windowMinutes", "Within minutes (1-1440)", repeated.windowMinutes, { type: "number", min: "1", max: "1440", inputmode: "numeric" }),
      checkboxField("repeated.sameAction", "Count each action on its own", repeated.sameAction),
    ),
  );
  const kind = selectField("kind", "Kind", policy.kind, Object.entries(KIND_NAMES));
  const showRepeated = () => {
    repeatedSet.hidden = kind.querySelector("select").value !== "repeatedActivity";
  };
  kind.querySelector("select").addEventListener("change", showRepeated);
  showRepeated();
  const errorArea = h("div", { className: "feedback", id: "form-feedback" });
  const save = h("button", { type: "submit", className: "primary" }, "Save changes");
  const form = h(
    "form",
    { className: "policy-form", "aria-labelledby": "definition-title", novalidate: true },
    errorArea,
    h(
      "fieldset",
      { className: "group" },
      h("legend", null, "Policy"),
      h(
        "div",
        { className: "grid" },
        textField("name", "Name", policy.name, { required: true, maxlength: "128" }),
        selectField("severity", "Severity", policy.severity, Object.entries(SEVERITY_NAMES)),
        kind,
        checkboxField("enabled", "Enabled", policy.enabled),
        h("div", { className: "field wide", dataset: { path: "description" } }, h("label", { for: fieldId("description") }, "Description"), description),
        webhookField(policy),
      ),
    ),
    repeatedSet,
    h(
      "fieldset",
      { className: "group" },
      h("legend", null, "Filter: every field given must match, any of its values"),
      h("p", { id: "lines-hint", className: "hint" }, "One value per line; leave a field empty to not filter on it."),
      h(
        "div",
        { className: "grid" },
        LIST_FIELDS.map(([name, label]) => linesField(`filter.${name}`, label, filter[name])),
        CHOICE_FIELDS.map(([name, legend, choices]) => choiceField(`filter.${name}`, legend, choices, filter[name])),
        checkboxField("filter.firstActivityOfPrincipal", "Only the first activity of an account", filter.firstActivityOfPrincipal),
      ),
    ),
    h("div", { className: "actions" }, save),
  );
  return { form, errorArea, save };
}

function readForm(form) {
  const value = (path) => form.elements.namedItem(path);
  const text = (path) => value(path).value.trim();
  const lines = (path) => {
    const items = value(path)
      .value.split("\n")
      .map((v) => v.trim())
      .filter(Boolean);
    return items.length ? items : null;
  };
  const number = (path) => {
    const raw = text(path);
    return raw === "" ? null : Number(raw);
  };
  const filter = {};
  for (const [name] of LIST_FIELDS) filter[name] = lines(`filter.${name}`);
  for (const [name] of CHOICE_FIELDS) {
    const checked = [...form.querySelectorAll(`input[name="filter.${name}"]:checked`)].map((i) => i.value);
    filter[name] = checked.length ? checked : null;
  }
  filter.firstActivityOfPrincipal = value("filter.firstActivityOfPrincipal").checked;
  const kind = value("kind").value;
  return {
    name: text("name"),
    description: text("description") || null,
    severity: value("severity").value,
    enabled: value("enabled").checked,
    kind,
    filter,
    repeated:
      kind === "repeatedActivity"
        ? { count: number("repeated.count"), windowMinutes: number("repeated.windowMinutes"), sameAction: value("repeated.sameAction").checked }
        : null,
    webhookUrl: text("webhookUrl") || null,
  };
}

/** Mark the field a 400 names (its message starts with the field's path) and say so beside it. */
function markField(form, message) {
  const path = (message.match(/^([A-Za-z0-9_.]+):/) || [])[1];
  if (!path) return null;
  const id = fieldId(path);
  // The field itself, else the nearest one above it (`repeated` is its group of fields).
  let control = form.querySelector(`#${CSS.escape(id)}`);
  if (!control) control = form.querySelector(`#${CSS.escape(id.split("-").slice(0, -1).join("-"))}`);
  if (!control) return null;
  const container = control.closest(".field") || control;
  const note = h("p", { className: "field-error", id: `${id}-error` }, message);
  container.append(note);
  control.setAttribute("aria-invalid", "true");
  const described = control.getAttribute("aria-describedby");
  control.setAttribute("aria-describedby", described ? `${described} ${note.id}` : note.id);
  return control;
}

function clearMarks(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    const rest = (control.getAttribute("aria-describedby") || "")
      .split(" ")
      .filter((id) => id && !id.endsWith("-error"));
    if (rest.length) control.setAttribute("aria-describedby", rest.join(" "));
    else control.removeAttribute("aria-describedby");
  }
}

export async function policyView(main, { params, navigate, render }) {
  document.title = "Policy";
  const id = params[0];
  const heading = h("h1", { tabindex: "-1" }, "Policy");
  const back = h("nav", { "aria-label": "Breadcrumb", className: "breadcrumb" }, h("a", { href: "#/policies" }, "Policies"));
  replace(main, back, heading, h("p", { role: "status" }, "Loading the policy…"));
  let policy;
  try {
    policy = await getPolicy(id);
  } catch (error) {
    replace(main, back, heading, alertBox("Could not load the policy.", errorText(error)));
    return heading;
  }
  document.title = `Policy: ${policy.name}`;
  heading.textContent = `Policy: ${policy.name}`;
  const feedback = h("div", { className: "feedback" });
  if (flash) {
    feedback.append(flash);
    flash = null;
  }

  const showFailure = (error, what) => {
    const box = alertBox(refusal(error, what, "The policy was not changed."), errorText(error));
    box.setAttribute("tabindex", "-1");
    replace(feedback, box);
    box.focus();
  };

  const toggle = h(
    "button",
    { type: "button", className: policy.state === "enabled" ? "secondary" : "primary" },
    policy.state === "enabled" ? "Disable policy" : policy.state === "paused" ? "Enable policy again" : "Enable policy",
  );
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    const enable = policy.state !== "enabled";
    try {
      const changed = await updatePolicy(policy.id, { ...definitionOf(policy), enabled: enable });
      flash = noticeBox(enable ? `The policy is enabled: it evaluates activities from ${new Date(changed.updatedAt).toLocaleString()} on.` : "The policy is disabled: it evaluates nothing until it is enabled again.");
      render();
    } catch (error) {
      toggle.disabled = false;
      showFailure(error, enable ? "enable policies" : "disable policies");
    }
  });
  const remove = h("button", { type: "button", className: "danger" }, "Delete policy");
  remove.addEventListener("click", () => {
    confirmDialog({
      name: "delete",
      title: "Delete this policy?",
      text: ["“", policy.name, "” stops raising alerts within 30 seconds. The alerts it raised are kept. This cannot be undone."],
      confirmLabel: "Delete",
      run: () => deletePolicy(policy.id),
      onDone: (error) => {
        if (error) {
          showFailure(error, "delete policies");
          return;
        }
        flash = noticeBox(`The policy “${policy.name}” is deleted. Its alerts are kept.`);
        navigate("#/policies");
      },
    });
  });

  const { form, errorArea, save } = definitionForm(policy);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMarks(form);
    replace(errorArea);
    save.disabled = true;
    try {
      await updatePolicy(policy.id, readForm(form));
      flash = noticeBox("The policy is saved: the new definition evaluates activities from now on.");
      render();
    } catch (error) {
      save.disabled = false;
      const title =
        error instanceof ApiError && error.status === 400
          ? "The policy was not saved: a field needs a change."
          : refusal(error, "change policies", "The policy was not saved.");
      const box = alertBox(title, errorText(error));
      box.setAttribute("tabindex", "-1");
      replace(errorArea, box);
      if (error instanceof ApiError && error.status === 400) markField(form, error.message);
      box.focus();
    }
  });

  replace(
    main,
    back,
    heading,
    feedback,
    definitionList([
      ["State", h("span", null, stateBadge(policy), policy.pausedMessage ? h("span", { className: "paused-message" }, policy.pausedMessage) : null)],
      ["Kind", KIND_NAMES[policy.kind] || policy.kind],
      ["Severity", SEVERITY_NAMES[policy.severity] || policy.severity],
      ["Created", h("span", null, timeElement(h, policy.createdAt), ` by ${dash(policy.createdBy)}`)],
      ["Changed", h("span", null, timeElement(h, policy.updatedAt), ` by ${dash(policy.updatedBy)}`)],
      ["Version", String(policy.version)],
      ["Alerts", h("a", { href: `#/alerts?policyId=${encodeURIComponent(policy.id)}` }, "Alerts raised by this policy")],
    ]),
    h("div", { className: "actions" }, toggle, remove),
    h(
      "section",
      { "aria-labelledby": "definition-title" },
      h("h2", { id: "definition-title" }, "Definition"),
      h("p", null, "Saving makes a new version: it evaluates activities from then on. Only a Global Administrator or a Security Administrator can change a policy."),
      form,
    ),
  );
  return heading;
}

