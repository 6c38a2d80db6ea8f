"""`retune --search`: a small recipe search, chosen on the validation queries only.

Each trial trains the same data with one recipe of the grid (`TunerSettings.search_grid`, e.g.
learning rates) and keeps its best checkpoint on validation (`tuner/train.py`); the trial with
the best validation score becomes the candidate. The gate's held-out queries play no part: they
decide promotion once, for the chosen trial only. The time budget (`max_minutes`) is shared out
evenly among the trials. A finished trial is saved with its result under its own folder (keyed
by the data and its recipe), so an interrupted search resumes where it stopped: finished
trials are reused, an interrupted one resumes from its checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ragctl.core.settings import TrainSettings
from ragctl.tuner.errors import TunerError
from ragctl.tuner.train import TrainResult
from ragctl.tuner.validation import SELECTION

# (recipe's settings, model folder, checkpoint folder) -> the trial's result.
RunTrial = Callable[[TrainSettings, Path, Path], TrainResult]

_RESULT = "trial.json"
_RECORDED = (
    "model_dir",
    "steps",
    "epochs_done",
    "seconds",
    "pairs",
    "loss",
    "matryoshka_dims",
    "stopped_by_budget",
    "device",
    "precision",
    "config",
    "validation",
)


@dataclass(frozen=True)
class Trial:
    """One recipe of the search and what it scored on the validation queries."""

    recipe: dict[str, Any]
    score: float  # the validation selection score of its kept checkpoint
    kept_step: int | None
    steps: int
    seconds: float
    reused: bool  # finished in an earlier run, read back


@dataclass(frozen=True)
class SearchResult:
    """Every trial, and the chosen one's training result (its model is in `model_dir`)."""

    trials: list[Trial]
    chosen: int  # index into `trials`
    training: TrainResult

    def record(self) -> dict[str, Any]:
        """For the registry and the model card."""
        return {
            "chosen": self.trials[self.chosen].recipe,
            "on": "validation queries (the gate's held-out set is not used)",
            "trials": [asdict(t) for t in self.trials],
        }


def check_grid(grid: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The grid's recipes, each a valid set of training fields; a clear error otherwise."""
    if not grid:
        raise TunerError("the search grid is empty: give at least one recipe")
    allowed = set(TrainSettings.model_fields)
    recipes = []
    for number, recipe in enumerate(grid, 1):
        unknown = sorted(set(recipe) - allowed)
        if unknown or not recipe:
            raise TunerError(
                f"search recipe {number} {dict(recipe)}: "
                + (f"unknown field(s) {unknown}; " if unknown else "empty; ")
                + f"allowed: {sorted(allowed)}"
            )
        recipes.append(dict(recipe))
    if len({json.dumps(r, sort_keys=True) for r in recipes}) < len(recipes):
        raise TunerError("the search grid repeats a recipe")
    return recipes


def trial_configs(
    base: TrainSettings, grid: Sequence[Mapping[str, Any]]
) -> list[tuple[dict[str, Any], TrainSettings]]:
    """Each recipe with the training settings it runs with: the base settings plus the recipe,
    and an even share of the base's time budget."""
    recipes = check_grid(grid)
    share = None if base.max_minutes is None else base.max_minutes / len(recipes)
    out = []
    for recipe in recipes:
        fields = {**base.hyperparameters(), **recipe, "max_minutes": share}
        try:
            config = TrainSettings.model_validate(fields)
        except ValueError as exc:
            raise TunerError(f"search recipe {recipe}: {exc}") from exc
        out.append((recipe, config))
    return out


def recipe_key(config: TrainSettings) -> str:
    """A short key of a recipe's training settings (its trial folder)."""
    text = json.dumps(config.hyperparameters(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_search(
    base: TrainSettings,
    grid: Sequence[Mapping[str, Any]],
    run_trial: RunTrial,
    work_dir: Path,
    *,
    on_trial: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run (or read back) each trial, and choose the best on validation (ties: the first).

    `run_trial(config, model_dir, checkpoint_dir)` trains with `config` and saves its model
    in `model_dir`; its result must carry a validation record (no validation queries: nothing
    to choose on). A finished trial's checkpoints are removed (its saved model is reused).
    """
    trials: list[Trial] = []
    results: list[TrainResult] = []
    for recipe, config in trial_configs(base, grid):
        folder = work_dir / f"trial-{recipe_key(config)}"
        saved = folder / _RESULT
        if saved.is_file():
            training = _read_result(saved)
            reused = True
        else:
            training = run_trial(config, folder / "model", folder / "checkpoints")
            if training.validation is None:
                raise TunerError(
                    "--search chooses on validation queries and this run has none: give more "
                    "queries or raise tuner.validation_fraction"
                )
            _write_result(saved, training)
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
            reused = False
        validation = training.validation or {}
        trial = Trial(
            recipe=recipe,
            score=float((validation.get("kept") or {}).get(SELECTION, float("-inf"))),
            kept_step=validation.get("kept_step"),
            steps=training.steps,
            seconds=round(training.seconds, 1),
            reused=reused,
        )
        trials.append(trial)
        results.append(training)
        # Only the best trial so far keeps its trained model in memory.
        best = max(range(len(trials)), key=lambda i: (trials[i].score, -i))
        for i, result in enumerate(results):
            if i != best:
                result.take_model()
        if on_trial:
            done = "read back" if reused else f"{trial.seconds:.0f} s"
            on_trial(f"trial {recipe}: validation score {trial.score:.4f} ({done})")
    return SearchResult(trials, best, results[best])


def install_chosen(result: SearchResult, output_dir: Path) -> TrainResult:
    """Copy the chosen trial's model into `output_dir`; its result, pointing there."""
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(result.training.model_dir, output_dir, dirs_exist_ok=True)
    return replace(result.training, model_dir=output_dir)


def _write_result(path: Path, training: TrainResult) -> None:
    # The recorded fields only (not a model object a result may carry in memory).
    data = {f.name: getattr(training, f.name) for f in fields(training) if f.name in _RECORDED}
    data["model_dir"] = str(training.model_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)  # the marker of a finished trial: written last, atomically


def _read_result(path: Path) -> TrainResult:
    data = json.loads(path.read_text())
    data["model_dir"] = path.parent / "model"
    return TrainResult(**data)
