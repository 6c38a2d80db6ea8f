"""`ragctl models profile`: measure a version's search profile on judged queries, explicitly.

A retune never changes how the serving version searches; this command is the one way to do it
outside a promotion. It evaluates the version's own collection (`NAME__vN`) on an eval set in
every mode, with the version's current fusion first and the fusion grid after, and proposes a
new profile only when one beats the current one with a significant paired gain on at least
`tuner.gate.min_queries` queries. Applying it keeps the previous profile, so it can be undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragctl.core.collections import bind_collection
from ragctl.core.encoder import Encoder
from ragctl.core.profile import resolve_profile, settings_fusion
from ragctl.core.registry import ModelRegistry
from ragctl.core.settings import Settings
from ragctl.core.store.base import VectorStore, physical_name
from ragctl.evalkit.runs import EvalOptions, evaluate, fusion_grid
from ragctl.tuner.errors import TunerError
from ragctl.tuner.loop import heldout_dataset
from ragctl.tuner.pairs import read_eval_set
from ragctl.tuner.profiles import choose_profile


@dataclass(frozen=True)
class ProfileMeasurement:
    """What a version serves with now, and what the eval set says it should."""

    version: int
    current: dict[str, Any] | None  # the registry's profile (None: the default)
    measured: dict[str, Any]  # `choose_profile`'s record, current profile as the baseline

    @property
    def changes(self) -> bool:
        """Whether the measurement found a significantly better profile."""
        return self.measured["test"] is not None


def measure_profile(
    settings: Settings,
    store: VectorStore,
    collection: str,
    version: int,
    eval_set: Path,
    *,
    encoder: Encoder | None = None,
    show_progress: bool = False,
) -> ProfileMeasurement:
    """Evaluate `collection`'s version `version` on `eval_set` in every search mode.

    Raises:
        TunerError: The version has no collection, or the collection has no lexical vectors
            (then dense is its only mode: nothing to choose).
    """
    physical = physical_name(collection, version)
    if physical not in {s.physical for s in store.list_specs()}:
        raise TunerError(f"v{version} has no collection {physical} to measure (never served?)")
    spec = store.spec(physical)
    if spec.lexical is None:
        raise TunerError(f"{physical} has no lexical vectors: dense is its only search mode")
    current = ModelRegistry(settings.data_dir).get(version).search
    profile = resolve_profile(settings, spec, current)
    bound = bind_collection(store, spec, settings, encoder=encoder)
    heldout = read_eval_set(eval_set, bound)
    dataset = heldout_dataset(
        heldout, bound, name=f"{collection}-profile", corpus_limit=20_000, seed=0
    )
    options = EvalOptions(
        shortlist=settings.search.shortlist,
        chunk_size_tokens=settings.chunking.size_tokens,
        chunk_overlap_tokens=settings.chunking.overlap_tokens,
        work_dir=settings.data_dir,
        show_progress=show_progress,
        lexical=spec.lexical,
        # The current fusion first: its row (`hybrid-default`) is the baseline to beat.
        fusions=fusion_grid(profile.fusion if current else settings_fusion(settings)),
    )
    report = evaluate(dataset, bound.encoder, options)
    measured = choose_profile(report, profile.mode, settings.tuner.gate, f"eval set {eval_set}")
    if measured is None:  # pragma: no cover - a lexical collection always has pipeline rows
        raise TunerError(f"no pipeline rows measured for {physical}")
    return ProfileMeasurement(version, current, measured)


def apply_profile(settings: Settings, measurement: ProfileMeasurement) -> None:
    """Record the measured profile, keeping the current one for `undo_profile`.

    Raises:
        TunerError: The measurement found nothing significantly better.
    """
    if not measurement.changes:
        raise TunerError(
            f"v{measurement.version}: no profile was significantly better than the current "
            "one on these queries; nothing to apply"
        )
    registry = ModelRegistry(settings.data_dir)
    record = registry.get(measurement.version)
    registry.update(
        measurement.version,
        search=measurement.measured,
        search_history=[*record.search_history, record.search],
    )


def undo_profile(settings: Settings, version: int) -> dict[str, Any] | None:
    """Restore the profile `version` had before the last applied one; returns it.

    Raises:
        TunerError: Nothing was applied to undo.
    """
    registry = ModelRegistry(settings.data_dir)
    record = registry.get(version)
    if not record.search_history:
        raise TunerError(f"v{version}: no earlier search profile to restore")
    previous = record.search_history[-1]
    registry.update(version, search=previous, search_history=record.search_history[:-1])
    return previous
