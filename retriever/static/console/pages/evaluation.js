// Evaluation: eval reports (retune's, and report.json files), their metrics and plot, and
// per-query wins and losses against a baseline when both have per-query values.
import { encodeId, get } from "../api.js";
import { evalPlot, legend } from "../charts.js";
import { badge, clear, errorBox, h, loading, num, section, shorten, signed, table, when } from "../ui.js";

const METRICS = ["ndcg@10", "mrr@10", "recall@10", "map@100", "accuracy@1"];
const NOTES = {
  sparse: "sparse = BM25 through Qdrant's sparse vectors on chunks (what --mode sparse serves)",
  bm25: "bm25 = the bm25s baseline on whole documents (k1 0.9, b 0.4, as published BEIR baselines): a reference, not a served mode",
};

export async function render(view, { arg, stale }) {
  const listing = await get("/v1/reports");
  if (stale()) return;
  view.append(h("h1", {}, "Evaluation"));
  if (!listing.reports.length) {
    view.append(h("p", { class: "muted" }, `No eval reports yet. A retune stores both models' reports here; \`ragctl eval --out ${listing.folder}/NAME\` adds one.`));
    return;
  }
  const chosen = arg || listing.reports[0].id;
  const picker = h("select", { id: "report-pick" }, listing.reports.map((r) => h("option", { value: r.id, selected: r.id === chosen }, r.title)));
  picker.addEventListener("change", () => {
    location.hash = `#/evaluation/${picker.value}`;
  });
  const body = h("div", { id: "report-body" }, loading());
  view.append(h("div", { class: "toolbar" }, h("label", { for: "report-pick" }, "Report"), picker), body);
  let detail;
  try {
    detail = await get(`/v1/reports/${encodeId(chosen)}`);
  } catch (error) {
    clear(body, errorBox(error));
    return;
  }
  let baseline = null;
  if (detail.baseline) {
    try {
      baseline = await get(`/v1/reports/${encodeId(detail.baseline)}`);
    } catch {
      baseline = null;
    }
  }
  if (!stale()) clear(body, showReport(detail, baseline, listing.reports));
}

function showReport(detail, baseline, all) {
  const report = detail.report;
  const sizes = report.sizes || {};
  const plotted = baseline
    ? [{ label: `baseline: ${baseline.title}`, report: baseline.report }, { label: detail.title, report }]
    : [{ label: detail.title, report }];
  const rows = report.rows.map((row) => [
    row.name,
    row.kind,
    ...METRICS.map((m) => num(row.metrics[m])),
  ]);
  const notes = report.rows.filter((r) => NOTES[r.name]).map((r) => h("li", {}, NOTES[r.name]));
  const compareTo = h(
    "select",
    { id: "compare-pick" },
    h("option", { value: "" }, "—"),
    all.filter((r) => r.id !== detail.id).map((r) => h("option", { value: r.id, selected: baseline && r.id === baseline.id }, r.title)),
  );
  const perQuery = h("div", { id: "per-query" });
  const showWins = async () => {
    if (!compareTo.value) {
      clear(perQuery, h("p", { class: "muted" }, "Choose a report of the same queries to compare with."));
      return;
    }
    const other = baseline && baseline.id === compareTo.value ? baseline : await get(`/v1/reports/${encodeId(compareTo.value)}`);
    clear(perQuery, winsAndLosses(other.report, report));
  };
  compareTo.addEventListener("change", showWins);
  const out = h(
    "div",
    {},
    section(
      detail.title,
      h("p", { class: "muted" }, `${report.model} on ${report.dataset} [${report.split}] · ${sizes.queries ?? "?"} queries, ${sizes.corpus ?? "?"} docs${sizes.chunks ? `, ${sizes.chunks} chunks` : ""} · ${when(report.created_at)}`),
      h("figure", { class: "chartbox" }, evalPlot(plotted), h("figcaption", {}, legend(plotted), h("span", { class: "muted" }, detail.per_query ? "Error bars: 95% bootstrap CI of the mean over queries." : "No per-query values in this report: no error bars."))),
      table(["row", "kind", ...METRICS], rows, { className: "metrics" }),
      notes.length ? h("ul", { class: "notes muted" }, notes) : null,
    ),
    section("Per-query wins and losses", h("div", { class: "toolbar" }, h("label", { for: "compare-pick" }, "Against"), compareTo), perQuery),
  );
  showWins();
  return out;
}

export function winsAndLosses(base, cand, metric = "ndcg@10") {
  const has = (r) => Boolean(r && r.per_query && Object.keys(r.per_query).length);
  const column = ["hybrid", "two-stage"].find((n) => cand.rows.some((r) => r.name === n && has(r))) ||
    (cand.rows.find(has) || {}).name;
  const b = base.rows.find((r) => r.name === column);
  const c = cand.rows.find((r) => r.name === column);
  if (!column || !has(b) || !has(c)) {
    return h("p", { class: "muted" }, "These reports carry no per-query values, so there are no wins and losses to list; the table above compares their means.");
  }
  const queries = { ...(base.queries || {}), ...(cand.queries || {}) };
  const diffs = Object.keys(c.per_query)
    .filter((q) => b.per_query[q] && typeof c.per_query[q][metric] === "number")
    .map((q) => ({ q, before: b.per_query[q][metric], after: c.per_query[q][metric] }))
    .map((d) => ({ ...d, delta: d.after - d.before }));
  const wins = diffs.filter((d) => d.delta > 1e-9);
  const losses = diffs.filter((d) => d.delta < -1e-9);
  const ties = diffs.length - wins.length - losses.length;
  const changed = [...wins, ...losses].sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta));
  return h(
    "div",
    {},
    h("p", { id: "wins-line" }, `${metric} at ${column}: `, badge(`${wins.length} wins`, "serving"), " ", badge(`${losses.length} losses`, "rejected"), ` ${ties} ties of ${diffs.length} queries`),
    changed.length
      ? table(["query", "before", "after", "Δ"], changed.slice(0, 100).map((d) => [shorten(queries[d.q] || d.q, 90), num(d.before), num(d.after), h("span", { class: d.delta > 0 ? "up" : "down" }, signed(d.delta))]), { className: "perquery" })
      : null,
  );
}
