// The console's shell: the key form, what the key may do, the collection and its serving
// model, and the pages.
import { get, getCollection, getKey, setCollection, setKey } from "./api.js";
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

// The collection this tab works on, with what serves it; a choice when the server has more
// than one (GET /v1/collections), else the default collection's line from GET /v1/ready.
async function refreshServing() {
  const line = document.getElementById("serving");
  let listing = null;
  try {
    listing = await get("/v1/collections");
  } catch {
    /* a read key is needed, or an older server: fall back to /v1/ready */
  }
  if (listing && listing.collections.length > 1) {
    const names = listing.collections.map((c) => c.name);
    if (!names.includes(getCollection())) setCollection("");
    const chosen = getCollection() || listing.default;
    const current = listing.collections.find((c) => c.name === chosen);
    const select = h(
      "select",
      { id: "collection" },
      names.map((name) => h("option", { value: name, selected: name === chosen }, name)),
    );
    select.addEventListener("change", () => {
      setCollection(select.value === listing.default ? "" : select.value);
      refreshServing();
      render();
    });
    clear(
      line,
      h("label", { for: "collection" }, "Collection "),
      select,
      current ? ` · serving ${current.physical} · model v${current.model_version} (${current.model})` : "",
    );
    return;
  }
  setCollection("");
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
    await refreshServing();
    await refreshAccess(); // the role line changes last, right before the page renders
    render();
  });
  document.getElementById("keyclear").addEventListener("click", async () => {
    input.value = "";
    setKey("");
    await refreshServing();
    await refreshAccess(); // the role line changes last, right before the page renders
    render();
  });
}

setupKeyForm();
window.addEventListener("hashchange", render);
await refreshAccess();
await refreshServing();
render();
