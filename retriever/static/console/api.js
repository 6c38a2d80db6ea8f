// The HTTP API, with the key of this tab (sessionStorage) sent as a Bearer token, and the
// collection chosen in this tab (none: the server's default) named on every request.
const KEY = "ragctl.apiKey";
const COLLECTION = "ragctl.collection";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function getCollection() {
  return sessionStorage.getItem(COLLECTION) || "";
}

export function setCollection(name) {
  if (name) sessionStorage.setItem(COLLECTION, name);
  else sessionStorage.removeItem(COLLECTION);
}

// Routes that take no collection ignore the parameter; a search names it in its body, and
// feedback on a search goes to that search's collection by its search_id.
function withCollection(query) {
  const chosen = getCollection();
  return chosen ? { collection: chosen, ...query } : query;
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

export function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  if (!text) return path;
  return `${path}${path.includes("?") ? "&" : "?"}${text}`;
}

async function failure(response) {
  let code = "http_error";
  let message = `HTTP ${response.status}`;
  let field = null;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message, field } = body.error);
  } catch {
    /* not JSON */
  }
  return new ApiError(response.status, code, message, field);
}

export async function api(method, path, { query = {}, body, headers: extra = {} } = {}) {
  const init = { method, headers: headers(extra) };
  if (body !== undefined) {
    const chosen = getCollection();
    if (path === "/v1/search" && chosen && !body.collection) body = { ...body, collection: chosen };
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url(path, withCollection(query)), init);
  } catch (error) {
    throw new ApiError(0, "unreachable", `cannot reach the server: ${error.message}`, null);
  }
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body, options = {}) => api("POST", path, { ...options, body });
export const del = (path) => api("DELETE", path);

// A file answered by the API, downloaded through a blob: URL (the key goes in the header).
export async function download(path, query, filename) {
  const response = await fetch(url(path, withCollection(query)), { headers: headers() });
  if (!response.ok) throw await failure(response);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  return blob.size;
}

export function encodeId(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}
