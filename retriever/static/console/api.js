// The HTTP API, with the key of this tab (sessionStorage) sent as a Bearer token.
const KEY = "ragctl.apiKey";

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
  return text ? `${path}?${text}` : path;
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
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
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
  const response = await fetch(url(path, query), { headers: headers() });
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
