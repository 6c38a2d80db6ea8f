// SVG charts drawn from API data: feedback per day, and an eval report's metric per dim with
// the pipeline modes (what users get) beside it. Y axes start at 0, so a 0.02 difference
// looks like one; confidence intervals come from per-query values when the report has them.
const SVG = "http://www.w3.org/2000/svg";
export const COLORS = ["#2456a6", "#c2571a", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41"];
const MODE_LABELS = {
  "two-stage": "dense two-stage",
  "single-stage": "dense single-stage",
  sparse: "sparse (BM25 in Qdrant)",
  hybrid: "hybrid",
  bm25: "bm25s baseline",
};
const MODE_ORDER = ["two-stage", "single-stage", "hybrid", "sparse", "bm25"];
const MODE_TICKS = {
  "two-stage": ["dense", "two-stage"],
  "single-stage": ["dense", "single"],
  hybrid: ["hybrid"],
  sparse: ["sparse", "(BM25)"],
  bm25: ["bm25s", "baseline"],
};

// A text of several lines (tspans), centered on x.
function lines(x, y, texts, cls) {
  return s("text", { x, y, class: cls, "text-anchor": "middle" },
    texts.map((t, i) => s("tspan", { x, dy: i ? 12 : 0 }, t)));
}

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function svgRoot(width, height, label) {
  return s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
    class: "chart",
    preserveAspectRatio: "xMidYMid meet",
  }, s("title", {}, label));
}

// A y axis from 0 to a round top at or above `max` (never a zoom onto the data's range).
export function yTop(max) {
  if (!(max > 0)) return 1;
  const top = Math.ceil((max * 1.08) * 10) / 10;
  return Math.min(Math.max(top, 0.1), max <= 1 ? 1 : top);
}

function yAxis(svg, x, y0, y1, top, ticks = 5, format = (v) => v.toFixed(1)) {
  for (let i = 0; i <= ticks; i += 1) {
    const value = (top * i) / ticks;
    const y = y0 - ((y0 - y1) * i) / ticks;
    svg.append(
      s("line", { x1: x, x2: x + 4, y1: y, y2: y, class: "tick" }),
      s("line", { x1: x, x2: "100%", y1: y, y2: y, class: "grid" }),
      s("text", { x: x - 4, y: y + 4, class: "axis", "text-anchor": "end" }, format(value)),
    );
  }
}

export function dayBars(byDay) {
  const width = 720;
  const height = 200;
  const left = 36;
  const bottom = 170;
  const topY = 16;
  const max = Math.max(1, ...byDay.map((d) => d.relevant + d.not_relevant));
  const top = Math.max(1, Math.ceil(max / 5) * 5);
  const svg = svgRoot(width, height, "Judgements per day: relevant and not relevant");
  yAxis(svg, left, bottom, topY, top, 5, (v) => String(Math.round(v)));
  const step = (width - left - 8) / byDay.length;
  const barWidth = Math.max(2, step * 0.7);
  byDay.forEach((day, i) => {
    const x = left + 4 + i * step;
    const scale = (bottom - topY) / top;
    const rel = day.relevant * scale;
    const not = day.not_relevant * scale;
    const label = `${day.day}: ${day.relevant} relevant, ${day.not_relevant} not relevant`;
    svg.append(
      s("g", {}, s("title", {}, label),
        s("rect", { x, y: bottom - rel, width: barWidth, height: rel, class: "bar-relevant" }),
        s("rect", { x, y: bottom - rel - not, width: barWidth, height: not, class: "bar-not" })),
    );
    if (i % Math.ceil(byDay.length / 6) === 0 || i === byDay.length - 1) {
      svg.append(s("text", { x: x + barWidth / 2, y: bottom + 16, class: "axis", "text-anchor": "middle" }, day.day.slice(5)));
    }
  });
  return svg;
}

// Deterministic bootstrap CI of a mean (seeded, so a page shows the same interval each time).
export function bootstrapCI(values, { resamples = 1000, confidence = 0.95, seed = 7 } = {}) {
  if (values.length < 2) return null;
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const means = [];
  for (let r = 0; r < resamples; r += 1) {
    let sum = 0;
    for (let i = 0; i < values.length; i += 1) sum += values[Math.floor(random() * values.length)];
    means.push(sum / values.length);
  }
  means.sort((a, b) => a - b);
  const tail = (1 - confidence) / 2;
  return [means[Math.floor(tail * (resamples - 1))], means[Math.ceil((1 - tail) * (resamples - 1))]];
}

export function rowCI(row, metric) {
  if (!row.per_query) return null;
  const values = Object.values(row.per_query)
    .map((m) => (m ? m[metric] : undefined))
    .filter((v) => typeof v === "number");
  return bootstrapCI(values);
}

// reports: [{label, report}], served: the served row name ("hybrid", "two-stage", ...).
export function evalPlot(reports, { metric = "ndcg@10", served = null } = {}) {
  const width = 760;
  const height = 320;
  const left = 44;
  const bottom = 240;
  const topY = 26;
  const split = 420; // the per-dim panel, then the pipeline panel
  const values = [];
  for (const { report } of reports) {
    for (const row of report.rows) if (row.metrics[metric] !== undefined) values.push(row.metrics[metric]);
  }
  const top = yTop(Math.max(...values, 0));
  const svg = svgRoot(width, height, `${metric} per dimension and per search mode`);
  const y = (v) => bottom - ((bottom - topY) * v) / top;
  yAxis(svg, left, bottom, topY, top, 5);
  svg.append(s("text", { x: 4, y: 12, class: "axis" }, metric));

  // Left: exact search at each Matryoshka dim (log2 x).
  const dims = [...new Set(reports.flatMap(({ report }) => report.rows.filter((r) => r.kind === "exact").map((r) => r.dim)))].sort((a, b) => a - b);
  const lx = (d) => {
    if (dims.length < 2) return (left + split) / 2;
    const lo = Math.log2(dims[0]);
    const hi = Math.log2(dims[dims.length - 1]);
    return left + 24 + ((Math.log2(d) - lo) / (hi - lo)) * (split - left - 48);
  };
  for (const d of dims) svg.append(s("text", { x: lx(d), y: bottom + 16, class: "axis", "text-anchor": "middle" }, String(d)));
  svg.append(s("text", { x: (left + split) / 2, y: bottom + 34, class: "axis", "text-anchor": "middle" }, "dimension (exact search, Matryoshka truncation)"));

  // Right: the pipeline modes, one slot each.
  const modes = MODE_ORDER.filter((m) => reports.some(({ report }) => report.rows.some((r) => r.name === m && r.metrics[metric] !== undefined)));
  const slot = modes.length ? (width - split - 20) / modes.length : 0;
  const mx = (i) => split + 10 + slot * (i + 0.5);
  svg.append(s("line", { x1: split, x2: split, y1: topY, y2: bottom, class: "divider" }));
  modes.forEach((mode, i) => {
    const label = mode === served ? [...MODE_TICKS[mode], "(served)"] : MODE_TICKS[mode];
    svg.append(lines(mx(i), bottom + 16, label, mode === served ? "axis served" : "axis"));
  });
  svg.append(s("text", { x: (split + width) / 2, y: bottom + 62, class: "axis", "text-anchor": "middle" }, "search mode (full dim, through the store)"));

  reports.forEach(({ report }, k) => {
    const color = COLORS[k % COLORS.length];
    const offset = (k - (reports.length - 1) / 2) * 8;
    const exact = report.rows.filter((r) => r.kind === "exact" && r.metrics[metric] !== undefined).sort((a, b) => a.dim - b.dim);
    if (exact.length) {
      svg.append(s("polyline", { points: exact.map((r) => `${lx(r.dim)},${y(r.metrics[metric])}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    }
    for (const row of exact) {
      const ci = rowCI(row, metric);
      if (ci) svg.append(s("line", { x1: lx(row.dim), x2: lx(row.dim), y1: y(ci[0]), y2: y(ci[1]), stroke: color, class: "ci" }));
      svg.append(s("circle", { cx: lx(row.dim), cy: y(row.metrics[metric]), r: 3.5, fill: color },
        s("title", {}, `${row.dim} dims: ${row.metrics[metric].toFixed(4)}${ci ? ` (95% CI ${ci[0].toFixed(4)}–${ci[1].toFixed(4)})` : ""}`)));
    }
    modes.forEach((mode, i) => {
      const row = report.rows.find((r) => r.name === mode);
      if (!row || row.metrics[metric] === undefined) return;
      const cx = mx(i) + offset;
      const ci = rowCI(row, metric);
      if (ci) svg.append(s("line", { x1: cx, x2: cx, y1: y(ci[0]), y2: y(ci[1]), stroke: color, class: "ci" }));
      const big = mode === served;
      svg.append(s("rect", { x: cx - (big ? 6 : 4), y: y(row.metrics[metric]) - (big ? 6 : 4), width: big ? 12 : 8, height: big ? 12 : 8, fill: mode === "bm25" ? "none" : color, stroke: color, "stroke-width": 2 },
        s("title", {}, `${MODE_LABELS[mode]}: ${row.metrics[metric].toFixed(4)}${ci ? ` (95% CI ${ci[0].toFixed(4)}–${ci[1].toFixed(4)})` : ""}`)));
    });
  });
  return svg;
}

export function legend(reports) {
  const list = document.createElement("ul");
  list.className = "legend";
  reports.forEach(({ label }, k) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLORS[k % COLORS.length];
    item.append(swatch, label);
    list.append(item);
  });
  return list;
}
