// The console's shell: the key form, what the key may do, the serving model, and the pages.
import { get, getKey, setKey } from "./api.js";
import { clear, errorBox, h } from "./ui.js";
import * as documents from "./pages/documents.js";
import * as evaluation from "./pages/evaluation.js";
import * as feedback from "./pages/feedback.js";
import * as models from "./pages/models.js";
import * as search from "./pages/search.js";

const PAGES = { search, documents, feedback, models, evaluation };

// What the current key may do (GET /v1/access); pages read it to offer or disable actions.
export const access = { role: null, read: true, write: false, admin: false };

async function refreshAccess() {
  const role = document.getElementById("role");
  try {
    Object.assign(access, await get("/v1/access"));
    const can = ["read", "write", "admin"].filter((name) => access[name]);
    const who = access.role ? `${access.role} key` : getKey() ? "unknown key" : "no key";
    role.textContent = `${who}: ${can.length ? can.join(", ") : "nothing"}`;
  } catch (error) {
    role.textContent = `access unknown: ${error.message}`;
  }
}

async function refreshServing() {
  const line = document.getElementById("serving");
  try {
    const ready = await get("/v1/ready");
    line.textContent = `Serving ${ready.collection} · model v${ready.model_version} (${ready.model})`;
  } catch (error) {
    line.textContent = `Not ready: ${error.message}`;
  }
}

function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "search").split("/");
  const page = PAGES[name] ? name : "search";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { page, arg };
}

let rendering = 0;

async function render() {
  const { page, arg } = route();
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · ragctl console`;
  const main = document.getElementById("main");
  const ticket = ++rendering;
  const view = h("div", { class: "page", "data-page": page });
  clear(main, view);
  try {
    await PAGES[page].render(view, { arg, access, stale: () => ticket !== rendering });
  } catch (error) {
    if (ticket === rendering) view.append(errorBox(error));
  }
}

function setupKeyForm() {
  const form = document.getElementById("keyform");
  const input = document.getElementById("apikey");
  input.value = getKey();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    await refreshAccess();
    render();
  });
  document.getElementById("keyclear").addEventListener("click", async () => {
    input.value = "";
    setKey("");
    await refreshAccess();
    render();
  });
}

setupKeyForm();
window.addEventListener("hashchange", render);
await refreshAccess();
refreshServing();
render();
