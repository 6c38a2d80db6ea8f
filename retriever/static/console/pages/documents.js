// Documents: the collection's documents, paginated and filtered by id prefix or metadata;
// one document's chunks; delete with a confirmation (write key).
import { del, encodeId, get } from "../api.js";
import { clear, confirmDialog, errorBox, h, loading, shorten, table, toast } from "../ui.js";

const PAGE = 50;
const state = { prefix: "", filter: "", offset: 0 };

export async function render(view, { arg, access, stale }) {
  if (arg) return renderDocument(view, arg, access, stale);
  const list = h("div", { id: "doclist" });
  view.append(h("h1", {}, "Documents"), filterForm(list, access), list);
  await load(list, access);
}

// `lang=en, team=front` -> {"metadata.lang": "en", ...}; a JSON object is passed on as is.
export function parseFilter(text) {
  const trimmed = text.trim();
  if (!trimmed) return null;
  if (trimmed.startsWith("{")) return JSON.parse(trimmed);
  const filter = {};
  for (const part of trimmed.split(",")) {
    const [key, ...value] = part.split("=");
    if (!key.trim() || !value.length) throw new Error(`"${part.trim()}" is not FIELD=VALUE`);
    const name = key.trim();
    const field = ["doc_id", "source", "chunk_id"].includes(name) || name.startsWith("metadata.")
      ? name
      : `metadata.${name}`;
    filter[field] = value.join("=").trim();
  }
  return filter;
}

function filterForm(list, access) {
  const prefix = h("input", { id: "prefix", type: "search", value: state.prefix, placeholder: "e.g. bar/" });
  const filter = h("input", {
    id: "metafilter",
    type: "search",
    value: state.filter,
    placeholder: "e.g. team=front or {\"metadata.lang\": \"en\"}",
  });
  const form = h(
    "form",
    { class: "filterform" },
    h("div", { class: "field" }, h("label", { for: "prefix" }, "Id prefix"), prefix),
    h("div", { class: "field grow" }, h("label", { for: "metafilter" }, "Metadata filter"), filter),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Filter")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(state, { prefix: prefix.value.trim(), filter: filter.value, offset: 0 });
    load(list, access);
  });
  return form;
}

async function load(list, access) {
  clear(list, loading());
  let filter;
  try {
    filter = parseFilter(state.filter);
  } catch (error) {
    clear(list, errorBox(new Error(`metadata filter: ${error.message}`)));
    return;
  }
  try {
    const page = await get("/v1/documents", {
      prefix: state.prefix,
      filter: filter ? JSON.stringify(filter) : "",
      offset: state.offset,
      limit: PAGE,
    });
    showPage(list, page, access);
  } catch (error) {
    clear(list, errorBox(error));
  }
}

function showPage(list, page, access) {
  if (!page.documents.length) {
    clear(list, h("p", { class: "muted" }, state.offset ? "No more documents." : "No documents match."));
    return;
  }
  const rows = page.documents.map((doc) => [
    h("a", { href: `#/documents/${encodeURIComponent(doc.doc_id)}` }, doc.doc_id),
    doc.source,
    String(doc.chunks),
    h("code", { class: "meta" }, shorten(JSON.stringify(doc.metadata), 80)),
  ]);
  const first = page.offset + 1;
  const lastShown = page.offset + page.documents.length;
  const prev = h("button", { type: "button", class: "secondary", disabled: page.offset === 0 }, "‹ Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: page.next_offset == null }, "Next ›");
  prev.addEventListener("click", () => {
    state.offset = Math.max(0, page.offset - PAGE);
    load(list, access);
  });
  next.addEventListener("click", () => {
    state.offset = page.next_offset;
    load(list, access);
  });
  clear(
    list,
    table(["document", "source", "chunks", "metadata"], rows, { caption: `${page.collection}: documents ${first}–${lastShown} of ${page.total}` }),
    h("div", { class: "pager" }, prev, h("span", { class: "muted" }, `${first}–${lastShown} of ${page.total}`), next),
  );
}

async function renderDocument(view, docId, access, stale) {
  view.append(h("p", {}, h("a", { href: "#/documents" }, "‹ All documents")), loading());
  let doc;
  try {
    doc = await get(`/v1/documents/${encodeId(docId)}`);
  } catch (error) {
    if (!stale()) clear(view, h("p", {}, h("a", { href: "#/documents" }, "‹ All documents")), errorBox(error));
    return;
  }
  if (stale()) return;
  const remove = h(
    "button",
    { type: "button", class: "danger", id: "delete-doc", disabled: !access.write, title: access.write ? null : "needs a write key" },
    "Delete document",
  );
  remove.addEventListener("click", async () => {
    const yes = await confirmDialog(
      "Delete this document?",
      `All ${doc.chunks.length} chunks of "${doc.doc_id}" will be removed from ${doc.collection}. Feedback already logged keeps its snapshot.`,
      { confirm: "Delete" },
    );
    if (!yes) return;
    try {
      const answer = await del(`/v1/documents/${encodeId(doc.doc_id)}`);
      toast(`Deleted ${answer.chunks_deleted} chunks of ${doc.doc_id}`);
      location.hash = "#/documents";
    } catch (error) {
      toast(error.message, "error");
    }
  });
  const chunks = h(
    "ol",
    { class: "chunks" },
    doc.chunks.map((chunk) =>
      h(
        "li",
        { class: "chunkitem" },
        h("div", { class: "muted" }, `chunk ${chunk.index} · chars ${chunk.start}–${chunk.end} · `, h("code", {}, chunk.chunk_id)),
        h("p", { class: "chunk" }, chunk.text),
      ),
    ),
  );
  clear(
    view,
    h("p", {}, h("a", { href: "#/documents" }, "‹ All documents")),
    h("h1", { class: "docid" }, doc.doc_id),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "source"), h("dd", {}, doc.source),
      h("dt", {}, "collection"), h("dd", {}, doc.collection),
      h("dt", {}, "chunks"), h("dd", {}, String(doc.chunks.length)),
      h("dt", {}, "metadata"), h("dd", {}, h("code", {}, JSON.stringify(doc.metadata))),
    ),
    remove,
    h("h2", {}, "Chunks"),
    chunks,
  );
}
