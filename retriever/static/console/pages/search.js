// Search: a query, its mode and k; results with score, document, chunk text, and a
// relevant / not relevant judgement on every result (POST /v1/feedback with the search_id).
import { ApiError, post } from "../api.js";
import { clear, errorBox, h, loading, num, toast } from "../ui.js";

const PREVIEW_CHARS = 280;
let last = null; // { form values, answer } of the latest search, kept across page changes

export async function render(view, { access }) {
  const results = h("div", { class: "results", id: "results" });
  const form = searchForm(async (request) => {
    clear(results, loading("Searching…"));
    try {
      const answer = await post("/v1/search", request);
      last = { request, answer };
      showResults(results, answer, access);
    } catch (error) {
      clear(results, errorBox(error));
    }
  });
  view.append(h("h1", {}, "Search"), form, results);
  if (last) showResults(results, last.answer, access);
}

function searchForm(onSearch) {
  const saved = last ? last.request : {};
  const query = h("input", {
    id: "q",
    name: "query",
    type: "search",
    required: true,
    maxlength: 2000,
    placeholder: "Ask what your documents answer",
    value: saved.query || "",
  });
  const mode = h(
    "select",
    { id: "mode", name: "mode" },
    h("option", { value: "" }, "default (the collection's profile)"),
    ["dense", "sparse", "hybrid"].map((m) =>
      h("option", { value: m, selected: saved.mode === m }, m),
    ),
  );
  const single = h("input", {
    id: "single",
    name: "single_stage",
    type: "checkbox",
    checked: Boolean(saved.single_stage),
  });
  const k = h("input", {
    id: "k",
    name: "k",
    type: "number",
    min: 1,
    max: 100,
    value: saved.k || 10,
  });
  const form = h(
    "form",
    { class: "searchform", role: "search" },
    h("div", { class: "field grow" }, h("label", { for: "q" }, "Query"), query),
    h("div", { class: "field" }, h("label", { for: "mode" }, "Mode"), mode),
    h("div", { class: "field small" }, h("label", { for: "k" }, "k"), k),
    h(
      "div",
      { class: "field check" },
      single,
      h("label", { for: "single" }, "Single-stage (full vector only, no shortlist)"),
    ),
    h("div", { class: "field" }, h("button", { type: "submit", id: "search-go" }, "Search")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = { query: query.value, k: Number(k.value) || 10 };
    if (mode.value) request.mode = mode.value;
    if (single.checked) request.single_stage = true;
    onSearch(request);
  });
  return form;
}

function showResults(box, answer, access) {
  const summary = h(
    "p",
    { class: "summary", id: "search-summary" },
    `${answer.results.length} results · model v${answer.model_version} · ${answer.mode} · `,
    `${answer.collection} · ${num(answer.took_ms, 1)} ms · search `,
    h("code", {}, answer.search_id.slice(0, 12)),
  );
  if (!answer.results.length) {
    clear(box, summary, h("p", { class: "muted" }, "Nothing found."));
    return;
  }
  const list = h(
    "ol",
    { class: "hits" },
    answer.results.map((hit, i) => result(hit, i, answer, access)),
  );
  clear(box, summary, list);
}

function result(hit, i, answer, access) {
  const full = hit.text;
  const long = full.length > PREVIEW_CHARS;
  const text = h("p", { class: "chunk" }, long ? `${full.slice(0, PREVIEW_CHARS)}…` : full);
  const more = long
    ? h("button", { type: "button", class: "link", "aria-expanded": "false" }, "Show all")
    : null;
  if (more) {
    more.addEventListener("click", () => {
      const open = more.getAttribute("aria-expanded") === "true";
      text.textContent = open ? `${full.slice(0, PREVIEW_CHARS)}…` : full;
      more.setAttribute("aria-expanded", String(!open));
      more.textContent = open ? "Show all" : "Show less";
    });
  }
  const status = h("span", { class: "judged", role: "status", "aria-live": "polite" });
  const buttons = ["relevant", "not_relevant"].map((label) =>
    judgeButton(label, hit, answer, access, status),
  );
  return h(
    "li",
    { class: "hit" },
    h(
      "div",
      { class: "hit-head" },
      h("span", { class: "rank" }, `#${i + 1}`),
      h("span", { class: "score", title: "score" }, num(hit.score, 4)),
      h("a", { href: `#/documents/${encodeURIComponent(hit.doc_id)}`, class: "doc" }, hit.doc_id),
      h("span", { class: "muted offsets" }, `chars ${hit.start}–${hit.end}`),
    ),
    text,
    more,
    h("div", { class: "judge" }, buttons, status),
  );
}

function judgeButton(label, hit, answer, access, status) {
  const text = label === "relevant" ? "Relevant" : "Not relevant";
  const button = h(
    "button",
    {
      type: "button",
      class: `judge-${label}`,
      "aria-pressed": "false",
      disabled: !access.write,
      title: access.write ? `Record "${text}" for this result` : "needs a write key",
      "data-chunk": hit.chunk_id,
    },
    text,
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const stored = await post("/v1/feedback", {
        search_id: answer.search_id,
        chunk_id: hit.chunk_id,
        label,
        idempotency_key: `${answer.search_id}:${hit.chunk_id}:${label}`.slice(0, 255),
      });
      for (const other of button.parentElement.querySelectorAll("button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      button.classList.add("recorded");
      status.textContent = `recorded #${stored.feedback_id}`;
      toast(`Recorded "${text}" for ${hit.doc_id}`);
    } catch (error) {
      status.textContent = "";
      toast(error instanceof ApiError ? error.message : String(error), "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
