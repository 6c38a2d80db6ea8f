"""Issue 7: dense vs sparse vs hybrid through the production path, fusion chosen honestly.

For each dataset (BEIR folder, test split) and model, the corpus is ingested once into a real
Qdrant Edge store with dense (full + mrl_64) and lexical (BM25, IDF modifier) vectors, and
every test query is ranked by: dense two-stage, sparse, and hybrid with each fusion of
`evalkit.runs.FUSION_GRID` -- one Qdrant query each. Fusion and mode are chosen by 2-fold
cross-validation on the test queries (choose on one half, score the other half, both ways), so
no reported number is picked on the queries it is scored on. Also shown: naive RRF (1:1,
k=60), the best fusion in hindsight (oracle, for reference only) and evalkit's bm25s baseline.

    .venv/bin/python bench/hybrid_quality.py [--dataset legal=PATH ...]
        [--model base=default --model legal-tuned=/tmp/legal-hn/models/v2 ...]
        [--train-scifact DIR]   # fine-tune the base model on scifact train first (1 epoch)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/data"
METRIC = "ndcg@10"


def _kv(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def train_scifact(out: Path) -> str:
    """1 epoch of the notebook recipe on scifact's train qrels (query, relevant abstract)."""
    from ragctl.core.encoder import resolve_model
    from ragctl.core.settings import TrainSettings
    from ragctl.evalkit.datasets import load_eval_dataset
    from ragctl.tuner.pairs import TrainingPair
    from ragctl.tuner.train import train

    if (out / "config.json").exists():
        return str(out)
    data = load_eval_dataset(DATA / "scifact", "train")
    pairs = [
        TrainingPair(data.queries[q], data.corpus[d], positive_id=d)
        for q, judged in data.qrels.items()
        for d, rel in judged.items()
        if rel > 0
    ]
    result = train(
        resolve_model("default"),
        pairs,
        TrainSettings(epochs=1, batch_size=32, learning_rate=2e-5),
        output_dir=out,
        checkpoint_dir=out.parent / (out.name + "-checkpoints"),
        shortlist_dims=(64,),
        show_progress=False,
    )
    print(f"trained scifact model on {len(pairs)} pairs in {result.seconds:.0f} s", flush=True)
    return str(out)


def cross_validated(
    per_label: dict[str, dict[str, list[str]]], qrels: dict, labels: list[str], seed: int = 7
) -> tuple[float, list[str]]:
    """ndcg of choosing the best of `labels` on one half of the queries and scoring it on the
    other (both ways); returns the score and the label chosen for each half."""
    from ragctl.evalkit.metrics import MetricConfig, evaluate_rankings

    config = MetricConfig()
    queries = sorted(qrels)
    random.Random(seed).shuffle(queries)
    halves = [queries[::2], queries[1::2]]
    combined: dict[str, list[str]] = {}
    chosen = []
    for tune, score in (halves, halves[::-1]):
        tune_qrels = {q: qrels[q] for q in tune}

        def value(label: str, tune_qrels: dict = tune_qrels) -> float:
            rankings = {q: per_label[label].get(q, []) for q in tune_qrels}
            return evaluate_rankings(rankings, tune_qrels, config)[METRIC]

        best = max(labels, key=value)
        chosen.append(best)
        combined.update({q: per_label[best].get(q, []) for q in score})
    return evaluate_rankings(combined, qrels, config)[METRIC], chosen


def measure(dataset_path: Path, model: str, work: Path) -> dict:
    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.lexical import LexicalSpec
    from ragctl.core.search import FusionMethod, FusionParams
    from ragctl.core.settings import ModelSettings
    from ragctl.evalkit.bm25 import BM25Params, bm25_rankings
    from ragctl.evalkit.datasets import load_eval_dataset
    from ragctl.evalkit.metrics import MetricConfig, evaluate_rankings
    from ragctl.evalkit.pipeline import run_pipeline
    from ragctl.evalkit.runs import FUSION_GRID, EvalOptions

    data = load_eval_dataset(dataset_path, "test")
    encoder = SentenceTransformerEncoder.load(ModelSettings(name_or_path=model), (64,))
    naive = FusionParams(method=FusionMethod.RRF, sparse_weight=1.0)  # rrf k=60, 1:1
    fusions = (*FUSION_GRID, naive) if naive not in FUSION_GRID else FUSION_GRID
    started = time.perf_counter()
    options = EvalOptions(  # rankings of 10 docs (the deepest cut-off), shortlist 100
        metrics=MetricConfig(map_at_k=(10,)),
        shortlist=100,
        single_stage=False,
        work_dir=work,
        lexical=LexicalSpec(),
        fusions=fusions,
    )
    run = run_pipeline(data, encoder, options)
    seconds = time.perf_counter() - started
    config = MetricConfig()

    def score(label: str) -> float:
        return evaluate_rankings(run.rankings[label], data.qrels, config)[METRIC]

    hybrid_labels = [f"hybrid#{i}" for i in range(len(fusions))]
    naive_label = f"hybrid#{fusions.index(naive)}"
    grid = {fusions[i].describe(): round(score(lbl), 4) for i, lbl in enumerate(hybrid_labels)}
    tuned, tuned_choice = cross_validated(run.rankings, data.qrels, hybrid_labels)
    auto, auto_choice = cross_validated(
        run.rankings, data.qrels, ["two-stage", "sparse", *hybrid_labels]
    )
    ids = list(data.corpus)
    bm = bm25_rankings(ids, [data.corpus[d] for d in ids], data.queries, 10, BM25Params())

    def name(label: str) -> str:
        return label if not label.startswith("hybrid#") else fusions[int(label[7:])].describe()

    return {
        "dataset": data.name,
        "model": model,
        "queries": len(data.queries),
        "corpus": len(data.corpus),
        "chunks": run.chunks,
        "ndcg@10": {
            "dense two-stage": round(score("two-stage"), 4),
            "sparse (Qdrant BM25)": round(score("sparse"), 4),
            "bm25s baseline": round(evaluate_rankings(bm.rankings, data.qrels, config)[METRIC], 4),
            "hybrid naive RRF 1:1 k=60": round(score(naive_label), 4),
            "hybrid tuned fusion (2-fold CV)": round(tuned, 4),
            "auto mode (2-fold CV)": round(auto, 4),
            "hybrid best in hindsight": max(grid.values()),
        },
        "cv_choices": {
            "hybrid": [name(c) for c in tuned_choice],
            "auto": [name(c) for c in auto_choice],
        },
        "fusion_grid": grid,
        "pipeline_seconds": round(seconds, 1),
        "search_seconds": {k: round(v, 2) for k, v in run.seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=_kv, action="append")
    parser.add_argument("--model", type=_kv, action="append")
    parser.add_argument("--train-scifact", type=Path, help="fine-tune on scifact train into DIR")
    parser.add_argument("--work", type=Path, default=Path("/tmp"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--tag", default="hybrid_quality")
    args = parser.parse_args()
    datasets = dict(args.dataset or [("legal", str(DATA / "legal-rag-positives-synthetic"))])
    models = dict(args.model or [("base", "default")])
    if args.train_scifact:
        models["scifact-tuned"] = train_scifact(args.train_scifact)
    results = []
    for dname, dpath in datasets.items():
        if not Path(dpath).is_dir():
            sys.exit(f"dataset not found: {dpath}")
        for mname, model in models.items():
            if mname.endswith("-tuned") and not mname.startswith(dname):
                continue  # a model tuned on one dataset is measured on that dataset
            print(f"{dname} x {mname} ...", flush=True)
            result = measure(Path(dpath), model, args.work)
            result["model_name"] = mname
            results.append(result)
            print(json.dumps(result["ndcg@10"], indent=1), flush=True)
    out = {
        "command": "python bench/hybrid_quality.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")
    columns = list(results[0]["ndcg@10"]) if results else []
    lines = [
        "# Hybrid retrieval quality: dense vs sparse vs fused, through the production path",
        "",
        f"`{out['command']}` on {out['machine']}, {out['date']}. ndcg@10 on each test split.",
        "Fusion and mode are chosen by 2-fold cross-validation on the test queries (never on",
        "the queries they are scored on); 'best in hindsight' is for reference only.",
        "",
        "| dataset | model | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in results:
        cells = [f"{r['ndcg@10'][c]:.4f}" for c in columns]
        lines.append(f"| {r['dataset']} | {r['model_name']} | " + " | ".join(cells) + " |")
    lines += ["", "Fusions chosen by the cross-validation (one per half):", ""]
    for r in results:
        lines.append(
            f"- {r['dataset']} / {r['model_name']}: hybrid {r['cv_choices']['hybrid']}, "
            f"auto {r['cv_choices']['auto']}"
        )
    (args.out / f"{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
