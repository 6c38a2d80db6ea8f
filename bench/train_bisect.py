"""Where does ragctl's training time go? A bare sentence-transformers Trainer with ONE of
ragctl's settings changed at a time, next to `tuner.train.train`, interleaved in rounds.

Each run trains the default model for one epoch on the first N legal train pairs (batch 32,
MNRL in MatryoshkaLoss over 384/256/128/64, lr 2e-5, warmup 0.1, cosine, no-duplicates),
timing `trainer.train()` only. Runs alternate variant by variant, round after round, so drift
of a shared machine hits every variant alike; the median per variant is reported.

    .venv/bin/python bench/train_bisect.py [--pairs 960] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared/data/legal-rag-positives-synthetic"

VARIANTS: dict[str, dict[str, Any]] = {
    "bare (notebook args)": {},
    "bare + weight_decay 0.01": {"weight_decay": 0.01},
    "bare + logging every 25 steps": {"logging_steps": 25},
    "bare + data_seed": {"data_seed": 42},
    "bare + ragctl's exact arguments": {"ragctl_args": True},
}


def bare_seconds(model_path: str, rows: list[dict], extra: dict[str, Any]) -> float:
    from retune_legal import bare_trainer_seconds

    from ragctl.core.settings import TrainSettings
    from ragctl.tuner.train import matryoshka_dims, training_arguments

    def ragctl_args(out: Path) -> Any:
        return training_arguments(TrainSettings(), out, device="cpu", show_progress=False)

    return bare_trainer_seconds(
        model_path,
        rows,
        1.0,
        32,
        2e-5,
        matryoshka_dims(384, (64,)),
        extra={"disable_tqdm": True, **extra},
        make_args=ragctl_args if extra.get("ragctl_args") else None,
    )


def ours_seconds(model_path: str, rows: list[dict]) -> float:
    from ragctl.core.settings import TrainSettings
    from ragctl.tuner.pairs import TrainingPair
    from ragctl.tuner.train import train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            model_path,
            [TrainingPair(r["anchor"], r["positive"]) for r in rows],
            TrainSettings(),
            output_dir=Path(tmp) / "out",
            checkpoint_dir=Path(tmp) / "ck",
            shortlist_dims=(64,),
            show_progress=False,
        )
    return result.seconds


def main() -> None:
    from ragctl.core.encoder import resolve_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=960)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (DATA / "raw/train_dataset.json").open()][: args.pairs]
    model = resolve_model("default")
    times: dict[str, list[float]] = {name: [] for name in [*VARIANTS, "ragctl tuner.train"]}
    for round_no in range(args.rounds):
        for name in times:
            seconds = (
                ours_seconds(model, rows)
                if name == "ragctl tuner.train"
                else bare_seconds(model, rows, VARIANTS[name])
            )
            times[name].append(round(seconds, 1))
            print(f"round {round_no + 1}: {name}: {seconds:.1f} s", flush=True)
    base = statistics.median(times["bare (notebook args)"])
    out = {
        "command": "python bench/train_bisect.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "date": time.strftime("%Y-%m-%d"),
        "pairs": len(rows),
        "steps": len(rows) // 32,
        "seconds": times,
        "median_vs_bare": {n: round(statistics.median(t) / base - 1, 4) for n, t in times.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_bisect.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Training time: bare Trainer with one ragctl setting at a time, and ragctl",
        "",
        f"`{out['command']}` on {out['machine']}, {out['date']}; {len(rows)} legal train pairs, "
        f"{out['steps']} steps of batch 32, MNRL in MatryoshkaLoss; runs interleaved, "
        f"{args.rounds} rounds.",
        "",
        "| variant | seconds per round | median vs bare |",
        "|---|---|---|",
    ]
    for name, values in times.items():
        lines.append(
            f"| {name} | {', '.join(map(str, values))} | {out['median_vs_bare'][name]:+.1%} |"
        )
    (args.out / "train_bisect.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
