// The REST API client: bearer token from sessionStorage, JSON bodies, error details, and the
// server-sent event stream read through fetch (EventSource cannot send an Authorization header).

const TOKEN_KEY = "flowdapt.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function buildUrl(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
    else url.searchParams.set(key, String(value));
  }
  return url.pathname + url.search;
}

function unauthorized(detail) {
  window.dispatchEvent(new CustomEvent("flowdapt:unauthorized", { detail }));
}

/** Call the API; resolves to the parsed JSON body, rejects with ApiError (status, detail). */
export async function request(method, path, { query, body, signal } = {}) {
  const headers = { Accept: "application/json", ...authHeaders() };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(buildUrl(path, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the Flowdapt server (${err.message}); is it still running?`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const detail =
      (data && typeof data === "object" && (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))) ||
      (typeof data === "string" && data) ||
      `${response.status} ${response.statusText}`;
    if (response.status === 401) unauthorized(detail);
    throw new ApiError(response.status, detail, data);
  }
  return data;
}

/** A file from the API (an artifact's plot) as a Blob: fetched with the token, which an <img src> cannot send. */
export async function getBlob(path, signal) {
  let response;
  try {
    response = await fetch(buildUrl(path), { headers: authHeaders(), signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the Flowdapt server (${err.message}); is it still running?`);
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not JSON */
    }
    if (response.status === 401) unauthorized(detail);
    throw new ApiError(response.status, detail);
  }
  return response.blob();
}

export const get = (path, query, signal) => request("GET", path, { query, signal });
export const post = (path, body, query) => request("POST", path, { body, query });
export const put = (path, body, query) => request("PUT", path, { body, query });
export const del = (path, query) => request("DELETE", path, { query });

let openapiPaths = null;

/** The server's route paths, to show features (e.g. firing a trigger) only when the server has them. */
export async function serverPaths() {
  if (openapiPaths === null) {
    try {
      const spec = await get("/openapi.json");
      openapiPaths = spec.paths || {};
    } catch {
      openapiPaths = {};
    }
  }
  return openapiPaths;
}

/** The first path template matching one of the candidates, with its methods, or null. */
export async function findPath(candidates, method = "post") {
  const paths = await serverPaths();
  for (const [template, item] of Object.entries(paths)) {
    const generic = template.replace(/\{[^}]+\}/g, "{}");
    if (candidates.includes(generic) && item[method]) return template;
  }
  return null;
}

export function fillPath(template, value) {
  return template.replace(/\{[^}]+\}/, encodeURIComponent(value));
}

/**
 * Follow the server's event stream (GET /events). Calls onEvent(type, data) per event and onOpen()
 * each time the stream (re)connects, so a page can reload its snapshot. Reconnects after a drop.
 * Returns {close()}.
 */
export function subscribe(query, handlers = {}) {
  return streamEvents("/events", query, handlers);
}

/**
 * Any server-sent event stream of the API, read through fetch with the token (EventSource cannot
 * send an Authorization header). `query` may be a function, called on every (re)connect, so a
 * stream can resume where it left off (the run logs' `after`). Returns {close()}.
 */
export function streamEvents(path, query, { onEvent, onOpen, onStatus } = {}) {
  let closed = false;
  let controller = null;
  let retryMs = 2000;

  let generation = 0;
  async function connect() {
    const mine = ++generation; // a newer connect() retires this loop
    const current = () => !closed && !paused && mine === generation;
    while (current()) {
      controller = new AbortController();
      try {
        const response = await fetch(buildUrl(path, typeof query === "function" ? query() : query), {
          headers: { Accept: "text/event-stream", ...authHeaders() },
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          unauthorized(`token required for ${path}`);
          return;
        }
        if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
        onStatus && onStatus("live");
        onOpen && onOpen();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            dispatch(frame);
          }
        }
      } catch (err) {
        if (!current()) return;
      }
      if (!current()) return;
      onStatus && onStatus("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  function dispatch(frame) {
    let type = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (!data.length) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      parsed = data.join("\n");
    }
    try {
      onEvent && onEvent(type, parsed);
    } catch (err) {
      console.error("event handler failed", err);
    }
  }

  // A hidden tab lets its stream go (browsers allow about six connections per server, and
  // every open dashboard tab would hold one); it reconnects, and reloads, when shown again.
  let paused = false;
  function onVisibility() {
    if (closed) return;
    if (document.visibilityState === "hidden" && !paused) {
      paused = true;
      if (controller) controller.abort();
    } else if (document.visibilityState === "visible" && paused) {
      paused = false;
      connect();
    }
  }
  document.addEventListener("visibilitychange", onVisibility);

  connect();
  return {
    close() {
      closed = true;
      document.removeEventListener("visibilitychange", onVisibility);
      if (controller) controller.abort();
    },
  };
}
