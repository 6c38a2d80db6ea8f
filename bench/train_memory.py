"""Peak memory of a training run (ragctl's `tuner.train`) per memory setting, and whether the
setting changes the trained weights.

Each variant trains the same few steps (legal train pairs, each with another pair's chunk as
its negative, as hard-negative mining gives: triplets of ~256-token chunks) in its own child
process, which reports its peak RSS (VmHWM) and saves the model; the parent compares every
variant's weights with the first one's.

    .venv/bin/python bench/train_memory.py [--steps 3] [--batch-size 32] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/data/legal-rag-positives-synthetic"

# cpu_mini_batch_size: on CPU the cached loss embeds the batch in mini-batches of this size
# (None: the whole batch at once, as before it existed).
VARIANTS: dict[str, dict[str, object]] = {
    "every activation kept (before)": {
        "activation_checkpointing": False,
        "cpu_mini_batch_size": None,
    },
    "activation checkpointing": {"activation_checkpointing": True, "cpu_mini_batch_size": None},
    "cached loss, mini-batch 16": {"activation_checkpointing": False, "cpu_mini_batch_size": 16},
    "cached loss, mini-batch 8 (the CPU default)": {
        "activation_checkpointing": False,
        "cpu_mini_batch_size": 8,
    },
    # (Activation checkpointing on top of the cached loss is not a variant any more: training
    # leaves it off there, after this benchmark measured it slower for little memory.)
}


def _child(spec: dict) -> None:
    """Train one variant; write its peak RSS and seconds to spec['result']."""
    from ragctl.core.encoder import resolve_model
    from ragctl.core.settings import TrainSettings
    from ragctl.tuner.pairs import TrainingPair
    from ragctl.tuner.train import train

    pairs = [TrainingPair(a, p, None, n) for a, p, n in spec["triplets"]]
    unknown = set(spec["settings"]) - set(TrainSettings.model_fields)
    if unknown:  # TrainSettings would ignore them silently
        sys.exit(f"unknown training settings: {sorted(unknown)}")
    config = TrainSettings(
        epochs=1, batch_size=spec["batch_size"], checkpoint_steps=10_000, **spec["settings"]
    )
    out = Path(spec["out"])
    started = time.perf_counter()
    result = train(
        resolve_model("default"),
        pairs,
        config,
        output_dir=out / "model",
        checkpoint_dir=out / "checkpoints",
        shortlist_dims=(64,),
        device="cpu",
        show_progress=False,
    )
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    Path(spec["result"]).write_text(
        json.dumps(
            {
                "peak_rss_mib": round(hwm / 1024),
                "seconds": round(seconds, 1),
                "train_seconds": round(result.seconds, 1),
                "steps": result.steps,
                "loss": result.loss,
            }
        )
    )


def _max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.numpy import load_file

    left, right = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return max(float(abs(left[k] - right[k]).max()) for k in left)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(json.loads(Path(sys.argv[2]).read_text()))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--only", action="append", help="run only these variants (repeatable)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.data / "raw/train_dataset.json").open()]
    chunks = [json.loads(line)["text"] for line in (args.data / "corpus.jsonl").open()]
    rng = random.Random(0)
    n = args.steps * args.batch_size
    triplets = [(r["anchor"], r["positive"], rng.choice(chunks)) for r in rows[:n]]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / f"v{len(results)}"
            spec = {
                "triplets": triplets,
                "batch_size": args.batch_size,
                "settings": settings,
                "out": str(out),
                "result": str(out / "result.json"),
            }
            out.mkdir()
            (out / "spec.json").write_text(json.dumps(spec))
            print(f"training: {name}", flush=True)
            subprocess.run(
                [sys.executable, __file__, "--child", str(out / "spec.json")],
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            results[name] = {"settings": settings, **json.loads((out / "result.json").read_text())}
            first = Path(tmp) / "v0" / "model"
            results[name]["max_abs_weight_diff_vs_first"] = _max_weight_diff(first, out / "model")
            print(f"  {results[name]}", flush=True)
    record = {
        "what": f"tuner.train on {n} legal triplets (anchor, positive, a corpus chunk as the "
        f"negative), batch {args.batch_size}, {args.steps} steps, CPU fp32",
        "variants": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "command": "python bench/train_memory.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_memory.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# training memory per setting",
        "",
        f"`{record['command']}` on {record['machine']}, {record['date']}. {record['what']}.",
        "",
        "| variant | peak RSS MiB | train s | max weight diff vs first |",
        "|---|---|---|---|",
        *(
            f"| {name} | {r['peak_rss_mib']} | {r['train_seconds']} | "
            f"{r['max_abs_weight_diff_vs_first']:.2e} |"
            for name, r in results.items()
        ),
        "",
    ]
    (args.out / "train_memory.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
