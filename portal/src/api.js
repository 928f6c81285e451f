// The connector's HTTP API, called with the signed-in person's access token.

import { accessToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

async function parse(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Call the API; answers the parsed body, or throws ApiError with the API's code and message. */
export async function api(method, path, { params, body, anonymous = false, okStatuses = [] } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (!anonymous) headers.Authorization = `Bearer ${await accessToken()}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "NetworkError", "The connector could not be reached. Check your connection and try again.");
  }
  const answer = await parse(response);
  if (response.ok || okStatuses.includes(response.status)) return { status: response.status, body: answer };
  const error = answer && answer.error;
  if (error && typeof error.message === "string") {
    throw new ApiError(response.status, error.code || "Error", error.message, answer);
  }
  throw new ApiError(response.status, "Error", `The connector answered ${response.status}.`, answer);
}

export const getConnectors = () => api("GET", "/api/connectors").then((r) => r.body);
export const connectAzure = () => api("POST", "/api/connectors/azure", { okStatuses: [502] });
export const disconnectAzure = () => api("DELETE", "/api/connectors/azure").then((r) => r.body);
export const activityPerDay = (days = 30) =>
  api("GET", "/api/connectors/azure/activity-per-day", { params: { days } }).then((r) => r.body);
export const searchActivities = (params) => api("GET", "/api/activities", { params }).then((r) => r.body);
export const getActivity = (id) =>
  api("GET", `/api/activities/${encodeURIComponent(id)}`).then((r) => r.body);
export const listAccounts = (params) => api("GET", "/api/accounts", { params }).then((r) => r.body);
export const getAccount = (id) => api("GET", `/api/accounts/${encodeURIComponent(id)}`).then((r) => r.body);
export const troubleshooting = () => api("GET", "/api/troubleshooting", { anonymous: true }).then((r) => r.body);

const policyPath = (id) => `/api/policies/${encodeURIComponent(id)}`;
export const listPolicies = () => api("GET", "/api/policies").then((r) => r.body);
export const getPolicy = (id) => api("GET", policyPath(id)).then((r) => r.body);
export const createPolicy = (definition) => api("POST", "/api/policies", { body: definition }).then((r) => r.body);
export const updatePolicy = (id, definition) => api("PUT", policyPath(id), { body: definition }).then((r) => r.body);
export const deletePolicy = (id) => api("DELETE", policyPath(id)).then((r) => r.body);
export const listPolicyTemplates = () => api("GET", "/api/policy-templates").then((r) => r.body);
export const searchAlerts = (params) => api("GET", "/api/alerts", { params }).then((r) => r.body);
export const getAlert = (id) => api("GET", `/api/alerts/${encodeURIComponent(id)}`).then((r) => r.body);
export const changeAlert = (id, change) =>
  api("PATCH", `/api/alerts/${encodeURIComponent(id)}`, { body: change }).then((r) => r.body);
