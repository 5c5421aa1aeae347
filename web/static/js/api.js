// The JSON API as the pages use it: every URL under the configured base path, the session's
// CSRF token on requests that change something, and failures as errors a person can read
// (the API's own "error" text).

const root = document.documentElement;

/** The configured [server] base_path, always ending in "/". */
export const base = root.dataset.base || "/";
/** Where the JSON API is: the server says so (base.html), so there is one prefix. */
export const apiBase = root.dataset.api;

/** A page of the UI by its path below the base path: page("job/abc"). */
export function page(path) {
  return base + path;
}

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code || null;
  }
}

function sessionToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`${base}login?next=${encodeURIComponent(here)}`);
}

/**
 * Call the API: api("/jobs/job_1", { method: "DELETE" }). Resolves with the parsed JSON;
 * rejects with an ApiError whose message is meant for a person.
 */
export async function api(path, { method = "GET", body, signal, keepalive = false } = {}) {
  const headers = { Accept: "application/json" };
  if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = sessionToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiBase + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
      keepalive,
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError("Matinee did not answer. Check the connection and try again.", 0, "NETWORK");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401) toLogin();
    const message =
      data && typeof data.error === "string" && data.error
        ? data.error
        : `Matinee answered with HTTP ${response.status}.`;
    throw new ApiError(message, response.status, data && data.code);
  }
  return data;
}
