"""Training throughput of `tuner.train.train` vs a bare sentence-transformers Trainer.

Same data (the first N train pairs of legal-rag-positives-synthetic), same recipe (MNRL in
MatryoshkaLoss over [384, 256, 128, 64], batch 32, lr 2e-5, warmup 10%, cosine,
no-duplicates batches), same process, one after the other on an otherwise idle machine.
Goal (issue 5): ragctl's overhead (checkpoints, budget callback, dataset building) < 10%.

    .venv/bin/python bench/train_overhead.py [--pairs 1600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared/data/legal-rag-positives-synthetic"


def main() -> None:
    from retune_legal import bare_trainer_seconds

    from ragctl.core.encoder import resolve_model
    from ragctl.core.settings import TrainSettings
    from ragctl.tuner.pairs import TrainingPair
    from ragctl.tuner.train import TrainResult, matryoshka_dims, train

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=1600)
    parser.add_argument("--ours-first", action="store_true", help="run ragctl's training first")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (DATA / "raw/train_dataset.json").open()][: args.pairs]
    model = resolve_model("default")

    def bare() -> float:
        seconds = bare_trainer_seconds(model, rows, 1.0, 32, 2e-5, matryoshka_dims(384, (64,)))
        print(f"bare Trainer: {seconds:.1f} s", flush=True)
        return seconds

    def ours() -> TrainResult:
        with tempfile.TemporaryDirectory() as tmp:
            result = train(
                model,
                [TrainingPair(r["anchor"], r["positive"]) for r in rows],
                TrainSettings(checkpoint_steps=100),
                output_dir=Path(tmp) / "out",
                checkpoint_dir=Path(tmp) / "ck",
                shortlist_dims=(64,),
                show_progress=False,
            )
        print(f"ragctl train: {result.seconds:.1f} s", flush=True)
        return result

    if args.ours_first:
        result = ours()
        bare_s = bare()
    else:
        bare_s = bare()
        result = ours()
    out = {
        "pairs": len(rows),
        "steps": result.steps,
        "bare_trainer_s": round(bare_s, 1),
        "ragctl_train_s": round(result.seconds, 1),
        "bare_pairs_per_s": round(len(rows) / bare_s, 2),
        "ragctl_pairs_per_s": round(len(rows) / result.seconds, 2),
        "overhead": round(result.seconds / bare_s - 1, 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "command": "python bench/train_overhead.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "train_overhead.md").write_text(
        "# Training throughput: ragctl vs a bare sentence-transformers Trainer\n\n"
        f"`{out['command']}` on {out['machine']}, {out['date']}; {len(rows)} legal train pairs, "
        f"{result.steps} steps of batch 32, MNRL in MatryoshkaLoss.\n\n"
        "| | seconds | pairs/s |\n|---|---|---|\n"
        f"| bare Trainer | {out['bare_trainer_s']} | {out['bare_pairs_per_s']} |\n"
        f"| ragctl `tuner.train.train` (checkpoints every 100 steps) | {out['ragctl_train_s']} | "
        f"{out['ragctl_pairs_per_s']} |\n\n"
        f"Overhead: {out['overhead']:+.1%}.\n"
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
