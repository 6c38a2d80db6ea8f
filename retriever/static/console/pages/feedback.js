// Feedback: judgements by label and by day, the newest ones, and an export (write key).
import { download, get } from "../api.js";
import { dayBars } from "../charts.js";
import { clear, errorBox, h, section, shorten, table, toast, when } from "../ui.js";

export async function render(view, { access, stale }) {
  const days = h("select", { id: "days" }, [7, 30, 90, 365].map((d) => h("option", { value: d, selected: d === 30 }, `${d} days`)));
  const body = h("div", { id: "feedback-body" });
  const exportButton = h(
    "button",
    { type: "button", id: "export", disabled: !access.write, title: access.write ? null : "needs a write key: the export holds the training data" },
    "Export JSON lines",
  );
  exportButton.addEventListener("click", async () => {
    try {
      const bytes = await download("/v1/feedback/export", {}, "feedback.jsonl");
      toast(`Exported feedback.jsonl (${bytes} bytes)`);
    } catch (error) {
      toast(error.message, "error");
    }
  });
  view.append(
    h("h1", {}, "Feedback"),
    h("div", { class: "toolbar" }, h("label", { for: "days" }, "Window"), days, exportButton),
    body,
  );
  const load = async () => {
    try {
      const stats = await get("/v1/feedback/stats", { days: days.value });
      if (!stale()) show(body, stats);
    } catch (error) {
      clear(body, errorBox(error));
    }
  };
  days.addEventListener("change", load);
  await load();
}

function show(body, stats) {
  const windowCount = stats.by_day.reduce((n, d) => n + d.relevant + d.not_relevant, 0);
  const counts = h(
    "div",
    { class: "stats" },
    stat("judgements", stats.total, "feedback-total"),
    stat("relevant", stats.by_label.relevant ?? 0, "feedback-relevant"),
    stat("not relevant", stats.by_label.not_relevant ?? 0, "feedback-not-relevant"),
    stat(`in ${stats.days} days`, windowCount),
    stat(`searches in ${stats.days} days`, stats.searches),
  );
  const busy = stats.by_day.filter((d) => d.relevant + d.not_relevant > 0);
  const recent = stats.recent.map((r) => [
    when(r.created_at),
    h("span", { class: `badge badge-${r.label}` }, r.label.replace("_", " ")),
    shorten(r.query, 60),
    h("a", { href: `#/documents/${encodeURIComponent(r.doc_id)}` }, r.doc_id),
    r.rank == null ? "–" : String(r.rank),
    `v${r.model_version}`,
  ]);
  clear(
    body,
    counts,
    section(
      "Per day",
      h("div", { class: "chartbox" }, dayBars(stats.by_day)),
      h("p", { class: "muted legendline" }, h("span", { class: "swatch bar-relevant-bg" }), "relevant ", h("span", { class: "swatch bar-not-bg" }), "not relevant"),
      busy.length
        ? h("details", {}, h("summary", {}, "Days with judgements (table)"),
            table(["day", "relevant", "not relevant"], busy.map((d) => [d.day, String(d.relevant), String(d.not_relevant)])))
        : h("p", { class: "muted" }, "No judgements in this window."),
    ),
    section(
      "Recent judgements",
      recent.length
        ? table(["when (UTC)", "label", "query", "document", "rank", "model"], recent, { className: "recent" })
        : h("p", { class: "muted" }, "None yet: judge results on the Search page."),
    ),
  );
}

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("span", { class: "value", id }, String(value)), h("span", { class: "label" }, label));
}
