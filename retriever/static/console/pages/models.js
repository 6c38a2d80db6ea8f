// Models: the registry (versions, parent, status, gate, best mode), the serving profile, a
// running retune, one version's gate numbers and eval plot; activate and rollback (admin).
import { get, post } from "../api.js";
import { evalPlot, legend } from "../charts.js";
import { badge, clear, confirmDialog, errorBox, h, loading, num, section, signed, table, toast, when } from "../ui.js";

let poll = null;

export async function render(view, { arg, access, stale }) {
  clearTimeout(poll);
  const registry = await get("/v1/models");
  if (stale()) return;
  const retune = h("div", { id: "retune" });
  const detail = h("div", { id: "model-detail" });
  view.append(
    h("h1", {}, "Models"),
    servingLine(registry, access),
    retune,
    section("Versions", versionsTable(registry)),
    detail,
  );
  showRetune(retune, stale);
  const version = arg ? Number(String(arg).replace(/^v/, "")) : null;
  if (version) {
    detail.append(loading());
    try {
      const record = await get(`/v1/models/${version}`);
      if (!stale()) clear(detail, modelDetail(record, registry, access));
    } catch (error) {
      clear(detail, errorBox(error));
    }
  }
}

function servingLine(registry, access) {
  const p = registry.profile;
  const fusion = p && p.mode === "hybrid"
    ? ` · fusion ${p.fusion.method}${p.fusion.method === "rrf" ? ` k=${p.fusion.rrf_k}` : ""} (dense ${p.fusion.dense_weight}, sparse ${p.fusion.sparse_weight})`
    : "";
  const canRollback = registry.history.length >= 2;
  const rollback = h(
    "button",
    { type: "button", class: "danger", id: "rollback", disabled: !access.admin || !canRollback, title: !access.admin ? "needs an admin key" : canRollback ? null : "nothing served before this version" },
    "Roll back",
  );
  rollback.addEventListener("click", async () => {
    const target = registry.history[registry.history.length - 2];
    const force = h("input", { type: "checkbox", id: "rollback-force" });
    const ok = await confirmDialog(
      `Roll back to v${target}?`,
      `v${registry.serving} stops serving ${registry.collection}; v${target} serves again (its collection is kept, nothing is re-embedded).`,
      { confirm: "Roll back", extra: [h("label", { class: "check" }, force, " even if the gate rejected it")] },
    );
    if (!ok) return;
    await admin(`/v1/admin/rollback`, { force: force.checked }, `Rolled back to v${target}`);
  });
  return section(
    "Serving",
    h("p", { id: "serving-profile" },
      `${registry.collection}: v${registry.serving}`,
      p ? ` (${p.physical}) · ${p.mode} search (${p.source})${fusion}` : "",
    ),
    h("p", { class: "muted" }, `Served so far: ${registry.history.map((v) => `v${v}`).join(" → ") || "–"}`),
    rollback,
  );
}

async function admin(path, query, done) {
  try {
    const answer = await post(path, undefined, { query: query.force ? { force: "true" } : {} });
    toast(`${done}: now ${answer.current}`);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } catch (error) {
    toast(error.message, "error");
  }
}

function versionsTable(registry) {
  const rows = [...registry.models].reverse().map((m) => [
    h("a", { href: `#/models/${m.version}` }, `v${m.version}`),
    badge(m.status),
    m.parent ? `v${m.parent}` : "–",
    when(m.created_at),
    m.search ? m.search.mode : "–",
    m.gate ? badge(m.gate.promote ? "passed" : "rejected", m.gate.promote ? "serving" : "rejected") : "–",
    h("code", {}, m.ref),
  ]);
  return table(["version", "status", "parent", "created (UTC)", "best mode", "gate", "model"], rows, { className: "versions" });
}

async function showRetune(box, stale) {
  let answer;
  try {
    answer = await get("/v1/retune/status");
  } catch (error) {
    clear(box, errorBox(error));
    return;
  }
  if (stale()) return;
  const status = answer.status;
  if (!status) {
    clear(box, section("Retune", h("p", { class: "muted", id: "retune-state" }, "No retune has run on this data dir (ragctl retune writes its progress here).")));
    return;
  }
  const result = status.result || {};
  const lines = [
    h("p", { id: "retune-state" }, badge(status.state), ` started ${when(status.started_at)} · updated ${when(status.updated_at)}`),
    status.step ? h("p", {}, "Step: ", h("strong", {}, status.step)) : null,
    status.error ? h("p", { class: "error" }, status.error) : null,
    result.reason ? h("p", {}, `v${result.candidate_version}: ${result.promote ? "passed" : "rejected"}${result.promoted ? ", now serving" : ""}`) : null,
    status.steps && status.steps.length
      ? h("details", {}, h("summary", {}, `All steps (${status.steps.length})`),
          h("ol", { class: "steps" }, status.steps.map((s) => h("li", {}, `${when(s.at)} ${s.message}`))))
      : null,
  ];
  clear(box, section("Retune", lines));
  if (status.state === "running") poll = setTimeout(() => showRetune(box, stale), 5000);
}

function modelDetail(record, registry, access) {
  const isServing = registry.serving === record.version;
  const rejected = record.gate && !record.gate.promote;
  const activate = h(
    "button",
    { type: "button", id: "activate", disabled: !access.admin || isServing, title: !access.admin ? "needs an admin key" : isServing ? "already serving" : null },
    `Activate v${record.version}`,
  );
  activate.addEventListener("click", async () => {
    const force = h("input", { type: "checkbox", id: "activate-force" });
    const ok = await confirmDialog(
      `Serve v${record.version}?`,
      `${registry.collection} is re-embedded with v${record.version} (the current model keeps serving meanwhile), then switched atomically. Roll back any time.`,
      { confirm: "Activate", extra: rejected ? [h("label", { class: "check" }, force, " serve it although the gate rejected it")] : [] },
    );
    if (!ok) return;
    await admin(`/v1/admin/models/${record.version}/activate`, { force: force.checked }, `Activated v${record.version}`);
  });
  const gate = record.gate
    ? h("div", { class: "gate" },
        h("h3", {}, "Gate: ", badge(record.gate.promote ? "passed" : "rejected", record.gate.promote ? "serving" : "rejected")),
        h("ul", { class: "reasons" }, record.gate_reason_lines.slice(1).map((line) => h("li", {}, line))),
        comparisons(record.comparisons))
    : h("p", { class: "muted" }, record.parent ? "No gate decision recorded." : "Base model: no gate (it was never a candidate).");
  const evaluation = record.evaluation || {};
  const plotted = [];
  if (evaluation.serving) plotted.push({ label: `v${record.parent} (serving then)`, report: evaluation.serving });
  if (evaluation.candidate) plotted.push({ label: `v${record.version} (candidate)`, report: evaluation.candidate });
  const served = registry.profile ? (registry.profile.mode === "dense" ? "two-stage" : registry.profile.mode) : null;
  return section(
    `v${record.version}`,
    h("dl", { class: "facts" },
      h("dt", {}, "status"), h("dd", {}, badge(record.status)),
      h("dt", {}, "parent"), h("dd", {}, record.parent ? `v${record.parent}` : "–"),
      h("dt", {}, "model"), h("dd", {}, h("code", {}, record.ref)),
      h("dt", {}, "base model"), h("dd", {}, record.base_model),
      h("dt", {}, "best mode"), h("dd", {}, record.search ? `${record.search.mode} (ndcg@10 ${Object.entries(record.search["ndcg@10"] || {}).map(([m, v]) => `${m} ${num(v)}`).join(", ")})` : "–"),
      record.training ? [h("dt", {}, "training"), h("dd", {}, `${record.training.pairs ?? "?"} pairs, ${record.training.steps ?? "?"} steps, ${record.training.seconds ?? "?"} s on ${record.training.device ?? "?"}`)] : null,
    ),
    activate,
    gate,
    plotted.length
      ? h("figure", { class: "chartbox" }, evalPlot(plotted, { served }), h("figcaption", {}, legend(plotted), h("span", { class: "muted" }, `Held-out queries: ${plotted[0].report.sizes.queries}. Error bars: 95% bootstrap CI when per-query values were recorded.`)))
      : null,
    plotted.length ? h("p", {}, h("a", { href: `#/evaluation/registry/v${record.version}/candidate` }, "Per-query wins and losses ›")) : null,
  );
}

function comparisons(rows) {
  if (!rows || !rows.length) return null;
  const anyTest = rows.some((r) => r.test);
  const headers = ["column", "serving", "candidate", "Δ"];
  if (anyTest) headers.push("95% CI of Δ", "wins / losses / ties");
  const body = rows.map((r) => {
    const cells = [r.column + (r.check ? ` (${r.check})` : ""), num(r.serving), num(r.candidate), h("span", { class: r.delta > 0 ? "up" : r.delta < 0 ? "down" : "" }, signed(r.delta))];
    if (anyTest) {
      cells.push(r.test ? `${signed(r.test.ci_low)} … ${signed(r.test.ci_high)}` : "–");
      cells.push(r.test ? `${r.test.wins} / ${r.test.losses} / ${r.test.ties}` : "–");
    }
    return cells;
  });
  return table(headers, body, { caption: `${rows[0].metric}: serving vs candidate on the held-out queries`, className: "compare" });
}
