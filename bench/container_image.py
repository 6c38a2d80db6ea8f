"""The container image built with podman: build times cold and cached, sizes, time to ready.

Runs `deploy/container_test.sh` twice, `--cold` (base images rebuilt, no layer cache: every
package downloaded again) and then cached (nothing changed), each with `--report`, and
records both runs in bench/results/container_image.{json,md}. Needs what the container test
needs (Linux, root or podman; see docs/deploy.md). `--from-reports COLD CACHED [CHANGED]`
records reports written earlier by `deploy/container_test.sh --report` instead of running;
CHANGED, optional: a run after a source change (the layers from the source on rebuilt).

    python bench/container_image.py                 # ~15-20 min on 2 cores
    python bench/container_image.py --from-reports COLD.json CACHED.json [CHANGED.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

ROWS = [  # (fact, label, unit)
    ("apt_install_s", "apt-get install podman buildah debootstrap runc", "s"),
    ("compose_install_s", "podman-compose 1.6.0 into its own venv", "s"),
    ("debian_image_s", "Debian base: debootstrap minbase + podman import", "s"),
    ("python_image_s", "python3 base (deploy/base/Containerfile)", "s"),
    ("runtime_build_s", "ragctl image build (deploy/Dockerfile, target runtime)", "s"),
    ("runtime_build_steps_cached", "build steps taken from the layer cache", ""),
    ("runtime_ready_s", "time to ready: `podman run` to /v1/ready 200 (hardened)", "s"),
    ("compose_embedded_ready_s", "time to ready: podman-compose up (embedded store)", "s"),
    ("total_s", "whole container test", "s"),
]
SIZES = [
    ("runtime_image_bytes", "ragctl image (runtime: torch, all extras, the model)"),
    ("python_image_bytes", "python3 base (localhost/python:3.11-bookworm)"),
    ("debian_image_bytes", "Debian base (localhost/debian:bookworm)"),
]


def run_container_test(cold: bool, report: Path) -> None:
    command = [str(ROOT / "deploy" / "container_test.sh"), "--report", str(report)]
    if cold:
        command.insert(1, "--cold")
    subprocess.run(command, check=True)


def _cell(facts: dict[str, Any], key: str, unit: str) -> str:
    if key not in facts:
        return "-"
    return f"{facts[key]:g}{' ' + unit if unit else ''}"


def markdown(runs: dict[str, dict[str, Any]], command: str, note: str) -> str:
    cold, cached = runs["cold"], runs["cached"]
    lines = [
        "# The container image, built and run with podman",
        "",
        f"`{command}` on {cold['machine']}; runs "
        + ", ".join(f"{name} {run['date']}" for name, run in runs.items())
        + "; 1-minute load average at the end of each: "
        + " / ".join(str(run["load_avg_1m_end"]) for run in runs.values())
        + " (other work on the machine slows every step). Cold: both base images rebuilt and "
        "the image built without the layer cache (every package downloaded again from the "
        "Debian mirror and PyPI; torch from a local CPU wheel). Cached: the same run again with "
        "nothing changed. Changed: after a change under the source folders (what CI sees after "
        "most commits). `-`: not done in that run (tools already installed, base images "
        "present).",
        "",
        "| step | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for key, label, unit in ROWS:
        cells = " | ".join(_cell(run["facts"], key, unit) for run in runs.values())
        lines.append(f"| {label} | {cells} |")
    lines += ["", "| image | size |", "|---|---|"]
    for key, label in SIZES:
        size = cached["facts"].get(key, cold["facts"].get(key))
        lines.append(f"| {label} | {size / 1e6:,.0f} MB |" if size else f"| {label} | - |")
    layers = [
        layer
        for layer in cached.get("layers", {}).get("runtime", [])
        if layer["size"].endswith(("MB", "GB"))
    ]
    if layers:
        lines += ["", "Layers of the ragctl image over 1 MB (`podman history`):", ""]
        lines += [f"- {layer['size']}: `{layer['created_by'][:100]}`" for layer in layers]
    checks = ", ".join(f"{name} {len(run['checks'])}" for name, run in runs.items())
    lines += ["", f"Checks passed: {checks} (every check of each run)."]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--from-reports", nargs="+", type=Path, metavar="REPORT", help="COLD CACHED [CHANGED]"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "container_image")
    parser.add_argument("--note", default="", help="A paragraph added to the Markdown.")
    args = parser.parse_args()
    if args.from_reports:
        if len(args.from_reports) not in (2, 3):
            parser.error("--from-reports takes COLD CACHED [CHANGED]: two or three reports")
        names = ("cold", "cached", "changed")[: len(args.from_reports)]
        files = dict(zip(names, args.from_reports, strict=True))
        command = "; ".join(
            f"deploy/container_test.sh{' --cold' if name == 'cold' else ''} --report {name.upper()}"
            for name in names
        )
    else:
        work = Path(tempfile.mkdtemp(prefix="ragctl-bench-container."))
        files = {"cold": work / "cold.json", "cached": work / "cached.json"}
        run_container_test(True, files["cold"])
        run_container_test(False, files["cached"])
        command = "python bench/container_image.py"
    runs = {name: json.loads(path.read_text()) for name, path in files.items()}
    if [run["cold"] for run in runs.values()] != [name == "cold" for name in runs]:
        parser.error("COLD must be a report of a --cold run, the others of runs without --cold")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "note": args.note, "runs": runs}, indent=2) + "\n"
    )
    args.out.with_suffix(".md").write_text(markdown(runs, command, args.note))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
