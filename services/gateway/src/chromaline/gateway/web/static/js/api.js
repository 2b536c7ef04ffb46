// The API client: bearer tokens, one refresh on 401, problem+json errors as ApiProblem.

import { clearTokens, loadTokens, renewalDue, saveTokens, who } from "./session.js";

export const API = "/api/v1";

/** An error the API answered with; `detail` is written for people. */
export class ApiProblem extends Error {
  constructor(status, body) {
    const detail = body?.detail || body?.title || `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.code = body?.code || "http_error";
    this.detail = detail;
    this.body = body || {};
  }
}

/** Thrown when the request failed before any answer came back. */
export class NetworkProblem extends Error {
  constructor() {
    super("The server could not be reached. Check the connection and try again.");
    this.status = 0;
    this.code = "network";
    this.detail = this.message;
  }
}

/** 401 codes that mean the session's token is missing or stale (others, e.g. a wrong password, do not). */
const SESSION_PROBLEMS = new Set(["unauthenticated", "invalid_token"]);

let refreshing = null;
const listeners = new Set();

/** Called with no argument when the session ends (the refresh token was refused). */
export function onSessionEnded(listener) {
  listeners.add(listener);
}

function authHeaders() {
  const headers = {};
  const tokens = loadTokens();
  if (tokens?.access_token) headers.Authorization = `Bearer ${tokens.access_token}`;
  if (who.organisation) headers["X-Organisation-ID"] = who.organisation;
  return headers;
}

async function refresh() {
  const tokens = loadTokens();
  if (!tokens?.refresh_token) return false;
  refreshing ??= fetch(`${API}/auth/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: tokens.refresh_token }),
  })
    .then(async (response) => {
      if (!response.ok) return false;
      saveTokens(await response.json());
      return true;
    })
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** Renew the access token first when it is about to expire: sent stale, it would be refused
 * (401) and the request sent again, and the browser would log the refusal as an error. */
export async function renewIfDue() {
  if (renewalDue()) await refresh();
}

async function problemOf(response) {
  let body = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      body = await response.json();
    } catch {
      body = null;
    }
  }
  return new ApiProblem(response.status, body);
}

/** fetch() under /api/v1 with the session's headers; returns the Response when it is 2xx. */
export async function raw(path, { method = "GET", body, json, headers = {}, retry = true } = {}) {
  if (retry) await renewIfDue();
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, init);
  } catch {
    throw new NetworkProblem();
  }
  if (response.ok) return response;
  const problem = await problemOf(response);
  if (response.status === 401 && SESSION_PROBLEMS.has(problem.code) && loadTokens()) {
    if (retry && (await refresh())) return raw(path, { method, body, json, headers, retry: false });
    clearTokens();
    listeners.forEach((listener) => listener());
  }
  throw problem;
}

const UPLOAD_ATTEMPTS = 4;

/** A fresh Idempotency-Key: a retried upload carrying it is answered once, never twice. */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function sendWithProgress(path, form, idempotencyKey, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${API}/${path}`);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.setRequestHeader("Idempotency-Key", idempotencyKey);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => resolve(request));
    request.addEventListener("error", () => reject(new NetworkProblem()));
    request.send(form);
  });
}

/** Whether an upload's answer is worth the same request again: the gateway or a dependency was
 * briefly away, or the same key is still being answered. */
function transient(request) {
  if (request === null || request.status === 502 || request.status === 503) return true;
  return request.status === 409 && request.responseText.includes('"idempotency_key_in_use"');
}

function retryDelay(request, attempt) {
  const header = request === null ? null : Number(request.getResponseHeader("Retry-After"));
  const seconds = header > 0 ? header : 2 ** attempt;
  return seconds * 1000 * (0.5 + Math.random());
}

/** POST a multipart form, reporting the share sent so far; the JSON answer. The form goes with an
 * Idempotency-Key, so a retry after a lost answer (network, 503) never starts the work twice. */
export async function upload(path, form, onProgress = () => {}) {
  const idempotencyKey = newIdempotencyKey();
  await renewIfDue();
  let request = null;
  for (let attempt = 1; attempt <= UPLOAD_ATTEMPTS; attempt += 1) {
    try {
      request = await sendWithProgress(path, form, idempotencyKey, onProgress);
    } catch (problem) {
      if (attempt === UPLOAD_ATTEMPTS) throw problem;
      request = null;
    }
    if (request !== null && request.status === 401 && loadTokens() && (await refresh())) {
      request = await sendWithProgress(path, form, idempotencyKey, onProgress);
    }
    if (!transient(request) || attempt === UPLOAD_ATTEMPTS) break;
    await new Promise((resolve) => setTimeout(resolve, retryDelay(request, attempt)));
  }
  let body = null;
  try {
    body = JSON.parse(request.responseText);
  } catch {
    body = null;
  }
  if (request.status < 200 || request.status >= 300) throw new ApiProblem(request.status, body);
  return body;
}

/** A JSON call; null for 204. */
export async function call(path, options) {
  const response = await raw(path, options);
  if (response.status === 204) return null;
  return response.json();
}

/** The answer as a Blob, with the file name from Content-Disposition. */
export async function fetchBlob(path) {
  const response = await raw(path);
  // 202: the file is still being made (a PDF report is made on first download); the body says so.
  if (response.status === 202) throw await problemOf(response);
  const name = downloadName(response.headers.get("Content-Disposition") || "") || path.split("/").pop();
  return { blob: await response.blob(), name, type: response.headers.get("Content-Type") || "" };
}

/** The name a download gives its file: the exact UTF-8 name (`filename*`, "写真.jpg") when the
 * answer has one, else the ASCII `filename` (where "写真.jpg" reads "__.jpg"); "" with neither. */
function downloadName(disposition) {
  const exact = /filename\*=UTF-8''([^;\s]+)/i.exec(disposition);
  if (exact) {
    try {
      return decodeURIComponent(exact[1]);
    } catch {
      // Not percent-encoded UTF-8: the ASCII name below is the one left.
    }
  }
  const ascii = /filename="?([^";]+)"?/.exec(disposition);
  return ascii ? ascii[1] : "";
}

/** Save an API file to disk: fetched with the session's headers, then handed to the browser. */
export async function download(path) {
  const { blob, name } = await fetchBlob(path);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

/** A WebSocket URL for an API path; browsers cannot send headers on it, so the token rides along. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(`${scheme}//${location.host}${API}/${path}`);
  const tokens = loadTokens();
  if (tokens?.access_token) url.searchParams.set("access_token", tokens.access_token);
  if (who.organisation) url.searchParams.set("organisation", who.organisation);
  return url.toString();
}
