"""The issue-5 check on the notebook's own dataset, through the whole loop on CPU (or, with
`--data` a BEIR folder such as scifact, the same loop on its train and test qrels).

1. ingest legal-rag-positives-synthetic's corpus into a fresh embedded store (base model v1);
2. replay its TRAIN pairs as if they were logged feedback (relevant = the pair's chunk);
3. `retune` with the notebook recipe (MNRL in MatryoshkaLoss, 1 epoch, batch 32, lr 2e-5),
   the TEST pairs as the golden eval set, so the gate compares base vs candidate on test;
4. record base vs candidate ndcg@10 per dim and through two-stage, the gate's decision with
   its paired tests (gain, 95% CI, p-value, wins/losses per gain column), training
   throughput next to a bare sentence-transformers Trainer on the same data and settings
   (same process, same machine), peak memory per phase (VmHWM, `bench/phase_memory.py`) and
   re-embed throughput.

    .venv/bin/python bench/retune_legal.py [--epochs 1] [--batch-size 32] [--hard-negatives]
        [--tag NAME] [--skip-bare] [--keep DIR] [--train-limit N] [--no-promote]
        [--validation-fraction F] [--evals-per-epoch E] [--patience P] [--note TEXT]

With a BEIR folder as `--data` (no `raw/train_dataset.json`), its train qrels are retune's
pair file and its test qrels the golden eval set; results go to `retune_<folder>_<tag>.*`.

With validation (the default since issue 18), a share of the training queries picks the best
checkpoint and `--epochs` is a maximum; `--validation-fraction 0` keeps the last step.
`--train-limit` trains on a seeded sample of the train pairs (a shared or small machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/data/legal-rag-positives-synthetic"


def _pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


def bare_trainer_seconds(
    model_path: str,
    rows: list[dict],
    epochs: float,
    batch: int,
    lr: float,
    dims: list[int],
    *,
    extra: dict | None = None,
    make_args: Any = None,
) -> float:
    """The same recipe with nothing of ragctl around it: `trainer.train()` seconds.

    `extra` adds Trainer arguments; `make_args(output_dir)` replaces them all.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    model = SentenceTransformer(model_path, device="cpu")
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=dims)
    data = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    with tempfile.TemporaryDirectory() as out:
        args = (
            make_args(Path(out))
            if make_args
            else SentenceTransformerTrainingArguments(
                output_dir=out,
                num_train_epochs=epochs,
                per_device_train_batch_size=batch,
                learning_rate=lr,
                warmup_ratio=0.1,
                lr_scheduler_type="cosine",
                batch_sampler=BatchSamplers.NO_DUPLICATES,
                save_strategy="no",
                report_to="none",
                seed=42,
                use_cpu=True,
                **(extra or {}),
            )
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started


def main() -> None:
    from ragctl.core.collections import open_or_create
    from ragctl.core.encoder import resolve_model
    from ragctl.core.settings import load_settings
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.loaders import iter_documents
    from ragctl.ingest.pipeline import ingest_documents, make_chunker
    from ragctl.tuner.loop import RetuneOptions, retune
    from ragctl.tuner.train import matryoshka_dims

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--hard-negatives", action="store_true")
    parser.add_argument("--negatives-from", default="dense", choices=["dense", "sparse", "hybrid"])
    parser.add_argument("--skip-bare", action="store_true", help="skip the bare-Trainer baseline")
    parser.add_argument("--tag", default="base-recipe")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="the dataset folder (default ../shared/data/...)"
    )
    parser.add_argument("--train-limit", type=int, help="a seeded sample of this many train pairs")
    parser.add_argument("--no-promote", action="store_true", help="gate only, no re-embed")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--validation-corpus-limit", type=int, default=2000)
    parser.add_argument("--evals-per-epoch", type=float, default=2.0)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument(
        "--max-minutes", type=float, help="tuner.max_minutes (stops in time, keeps the best)"
    )
    parser.add_argument(
        "--shortlist-loss-weight", type=float, default=1.0, help="tuner.shortlist_loss_weight"
    )
    parser.add_argument(
        "--shortlist-alignment", type=float, default=0.0, help="tuner.shortlist_alignment"
    )
    parser.add_argument("--note", default="", help="recorded as is (e.g. the machine was shared)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument(
        "--keep", type=Path, help="use (and keep) this data dir instead of a temporary one"
    )
    args = parser.parse_args()
    data = args.data
    if not data.is_dir():
        sys.exit(f"dataset not found: {data} (--data DIR)")

    from phase_memory import PhaseMemory

    memory = PhaseMemory()
    memory.enter("load model + ingest")

    beir = not (data / "raw/train_dataset.json").is_file()
    name = data.name if beir else "legal"
    train_rows = [] if beir else _pairs(data / "raw/train_dataset.json")
    if args.train_limit and args.train_limit < len(train_rows):
        import random

        train_rows = random.Random(42).sample(train_rows, args.train_limit)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.keep) if args.keep else scratch
        settings = load_settings(
            data_dir=Path(tmp),
            collection=name,
            tuner={
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.lr,
                "checkpoint_steps": 100,
                "hard_negatives": args.hard_negatives,
                "negatives_from": args.negatives_from,
                "validation_fraction": args.validation_fraction,
                "validation_corpus_limit": args.validation_corpus_limit,
                "evals_per_epoch": args.evals_per_epoch,
                "early_stopping_patience": args.patience,
                "max_minutes": args.max_minutes,
                "shortlist_loss_weight": args.shortlist_loss_weight,
                "shortlist_alignment": args.shortlist_alignment,
            },
        )
        store = EdgeStore(settings.qdrant_path)
        serving = open_or_create(store, settings, name)
        spec, encoder = serving.spec, serving.encoder
        chunker = make_chunker(encoder, 256, 32)
        ingest = ingest_documents(iter_documents([data / "corpus.jsonl"]), serving, chunker)
        print(f"ingested {ingest.chunks_written} chunks in {ingest.seconds:.0f} s", flush=True)
        eval_set = Path(tmp) / "test_pairs.jsonl"
        if beir:  # train qrels as pair files, test qrels as judged queries
            eval_set.write_text(_judged_test_queries(data))
            feedback: list[dict] = []
        else:  # train pairs replayed as logged feedback, test pairs as the golden set
            eval_set.write_text((data / "raw/test_dataset.json").read_text())
            chunk_of = {
                doc: next(iter(ids))
                for doc, ids in store.chunk_ids_of(
                    spec.physical, sorted({str(r["global_chunk_id"]) for r in train_rows})
                ).items()
            }
            feedback = [
                {
                    "query": r["anchor"],
                    "chunk_id": chunk_of[str(r["global_chunk_id"])],
                    "label": "relevant",
                    "chunk_text": r["positive"],
                }
                for r in train_rows
            ]
        steps: list[tuple[float, str]] = []
        started = time.perf_counter()
        result = retune(
            settings,
            store,
            RetuneOptions(
                collection=name,
                feedback=feedback,
                pair_files=[data] if beir else [],
                eval_set=eval_set,
                show_progress=False,
                promote=not args.no_promote,
            ),
            on_step=lambda m: (
                _phase(m) and memory.enter(_phase(m)),
                steps.append((round(time.perf_counter() - started, 1), m)),
                print(f"[{time.perf_counter() - started:6.0f}s] {m}", flush=True),
            ),
            serving_encoder=encoder,
        )
        total_s = time.perf_counter() - started
        store.close()
    phases = memory.close()
    bare_s = None
    if not args.skip_bare and feedback:
        rows = [{"anchor": f["query"], "positive": f["chunk_text"]} for f in feedback]
        bare_s = bare_trainer_seconds(
            resolve_model("default"),
            rows,
            args.epochs,
            args.batch_size,
            args.lr,
            matryoshka_dims(384, (64,)),
        )

    def ndcg(report, name):  # type: ignore[no-untyped-def]
        row = report.row(name)
        return None if row is None else round(row.metrics["ndcg@10"], 4)

    serving_report, candidate_report = result.evaluation.serving, result.evaluation.candidate
    columns = [r.name for r in serving_report.rows]
    training = result.candidate.training
    out = {
        "tag": args.tag,
        "dataset": f"{data.name} (train qrels as pair files; test qrels as eval set)"
        if beir
        else "legal-rag-positives-synthetic (corpus 2,316 chunks; "
        "train pairs as feedback; test pairs as eval set)",
        "recipe": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "hard_negatives": args.hard_negatives,
            "negatives_from": args.negatives_from if args.hard_negatives else None,
            "loss": training.loss,
            "train_pairs_used": training.pairs if beir else len(train_rows),
            "validation_fraction": args.validation_fraction,
            "evals_per_epoch": args.evals_per_epoch,
            "early_stopping_patience": args.patience,
            "max_minutes": args.max_minutes,
        },
        "validation": training.validation,
        "ndcg@10": {
            c: {"base": ndcg(serving_report, c), "tuned": ndcg(candidate_report, c)}
            for c in columns
        },
        "gate": {
            "promote": result.decision.promote,
            "reason": result.decision.reason,
            "queries": result.decision.queries,
            "significance": result.decision.significance,
            "gains": [
                {"column": c.column, "passed": c.passed, **(c.test.to_dict() if c.test else {})}
                for c in result.decision.comparisons
                if c.check == "gain"
            ],
        },
        "promoted": result.promoted,
        "training": {
            "pairs": training.pairs,
            "steps": training.steps,
            "seconds": round(training.seconds, 1),
            "pairs_per_s": round(training.pairs_per_s, 2),
        },
        "bare_trainer": None
        if bare_s is None
        else {
            "seconds": round(bare_s, 1),
            "pairs_per_s": round(training.pairs * args.epochs / bare_s, 2),
            "ragctl_overhead": round(training.seconds / bare_s - 1, 4),
        },
        "mining": None if result.mining is None else result.mining.__dict__,
        "reembed": None
        if result.sync is None
        else {
            "points": result.sync.points,
            "seconds": round(result.sync.seconds, 1),
            "chunks_per_s": round(result.sync.points / result.sync.seconds, 1),
        },
        "total_retune_s": round(total_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mib_per_phase": phases,
        "steps": steps,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "note": args.note,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "command": "python bench/retune_legal.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"retune_{name}_{args.tag}.json").write_text(
        json.dumps(out, indent=2, default=str) + "\n"
    )
    lines = [
        f"# retune on {data.name} ({args.tag})",
        "",
        f"`{out['command']}` on {out['machine']}, {out['date']}. Recipe: {out['recipe']}.",
        "",
        *(
            [f"Note: {args.note} (load average at the end: {out['load_average_at_end']}).", ""]
            if args.note
            else []
        ),
        "| column | base ndcg@10 | tuned ndcg@10 | delta |",
        "|---|---|---|---|",
    ]
    for c, v in out["ndcg@10"].items():
        lines.append(f"| {c} | {v['base']} | {v['tuned']} | {v['tuned'] - v['base']:+.4f} |")
    lines += [
        "",
        f"Gate: {'promote' if out['gate']['promote'] else 'reject'} -- {out['gate']['reason']}",
        "",
        "| gain column | gain | 95% CI | p (better) | wins / losses / ties | passed |",
        "|---|---|---|---|---|---|",
        *(
            f"| {g['column']} | {g.get('gain', 0):+.4f} | [{g.get('ci_low', 0):+.4f}, "
            f"{g.get('ci_high', 0):+.4f}] | {g.get('p_better')} | "
            f"{g.get('wins')} / {g.get('losses')} / {g.get('ties')} | {g['passed']} |"
            for g in out["gate"]["gains"]
        ),
        "",
        "| phase | peak RSS MiB | RSS at end MiB | seconds |",
        "|---|---|---|---|",
        *(
            f"| {p['phase']} | {p['peak_rss_mib']} | {p['end_rss_mib']} | {p['seconds']} |"
            for p in phases
        ),
        "",
        f"Training: {out['training']}; bare Trainer: {out['bare_trainer']}; "
        f"re-embed: {out['reembed']}; "
        f"whole retune {out['total_retune_s']} s; peak RSS {out['peak_rss_mib']} MiB.",
        "",
    ]
    record = training.validation
    if record:
        lines += [
            f"Validation ({record['queries']} queries, corpus {record['corpus']}, score "
            f"{record['score']}): base {record['base']}; kept step {record['kept_step']} of "
            f"{record['last_step']} (stopped early: {record['stopped_early']}); "
            f"{record['seconds']} s evaluating.",
            "",
            "| step | epoch | selection | "
            + " | ".join(k for k in record["evaluations"][0] if k.startswith("ndcg"))
            + " |",
            "|---|---|---|" + "---|" * sum(k.startswith("ndcg") for k in record["evaluations"][0]),
        ]
        for e in record["evaluations"]:
            ndcgs = " | ".join(str(v) for k, v in e.items() if k.startswith("ndcg"))
            lines.append(f"| {e['step']} | {e['epoch']} | {e['selection']} | {ndcgs} |")
        lines.append("")
    (args.out / f"retune_{name}_{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _judged_test_queries(folder: Path) -> str:
    """A BEIR folder's test split as retune's judged eval set: JSON lines of
    `{"query": text, "relevant": [doc ids]}` (qrels score > 0)."""
    from ragctl.evalkit.datasets import load_beir

    test = load_beir(folder, "test")
    return "".join(
        json.dumps({"query": test.queries[q], "relevant": [d for d, s in judged.items() if s > 0]})
        + "\n"
        for q, judged in test.qrels.items()
    )


def _phase(message: str) -> str | None:
    """The phase a retune step message starts (None: the current phase goes on)."""
    for prefix, name in (
        ("collecting", "collect pairs"),
        ("mining", "mine hard negatives"),
        ("training", "train"),
        ("evaluating", "evaluate"),
        ("gate", "gate + record"),
        ("re-embedding", "re-embed"),
    ):
        if message.startswith(prefix):
            return name
    return None


if __name__ == "__main__":
    main()
