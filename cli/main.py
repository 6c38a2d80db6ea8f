"""The `ragctl` command: thin wiring of core, ingest (and later evalkit, tuner, retriever).

Heavy imports (torch, sentence-transformers, qdrant) happen inside the commands, so
`ragctl --help` answers at once. Library errors become one clear line and exit code 1.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ragctl.cli import commands_data, commands_eval, commands_serve, commands_tune
from ragctl.cli.context import State

# Libraries that log (or draw bars) at their own levels whatever the root logger says.
_NOISY_LOGGERS = ("bm25s", "httpx", "urllib3", "qdrant_client", "sentence_transformers",
                  "transformers", "datasets", "accelerate")  # fmt: skip


def _setup_logging(verbose: int) -> None:
    """Everything to stderr; at the default verbosity only warnings, and none of the
    libraries' own chatter (bm25s' DEBUG lines, weight-loading bars, server-version checks)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # The handler filters too: a library that sets its own logger to DEBUG (bm25s) would
    # otherwise print through it.
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for package in ("core", "ingest", "evalkit", "tuner", "retriever", "ragctl"):
        logging.getLogger(package).setLevel(level)
    if verbose < 2:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        # transformers' load reports and "Loading weights" bars, the Hub's download bars
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        _quiet_warnings()


def _quiet_warnings() -> None:
    """Python warnings libraries raise on every run that say nothing to an operator."""
    import warnings

    # qdrant-client compares its version with the server's on connect
    warnings.filterwarnings("ignore", message=r".*[Qq]drant client version .* incompatible.*")
    warnings.filterwarnings("ignore", message=r".*[Ff]ailed to obtain server version.*")
    warnings.filterwarnings("ignore", message=r".*Api key is used with an insecure connection.*")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (default: ./ragctl.toml when present).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded store, models and logs live (default: ./.ragctl).",
)
@click.option(
    "--model",
    "model_name",
    help="Embedding model id or local path for NEW collections (default: packaged "
    "all-MiniLM-L6-v2). "
    "An existing collection always uses the model it was embedded with.",
)
@click.option(
    "--store-url",
    help="Qdrant server URL (e.g. http://localhost:6333); omit for the embedded Qdrant Edge store.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="ragctl")
@click.pass_context
def main(
    ctx: click.Context,
    config: Path | None,
    data_dir: Path | None,
    model_name: str | None,
    store_url: str | None,
    verbose: int,
) -> None:
    """ragctl: RAG retrieval on Qdrant with two-stage Matryoshka search and a tuning loop.

    Settings come from defaults < ragctl.toml < RAGCTL_* environment variables (nested with
    __, e.g. RAGCTL_STORE__URL) < these flags.
    """
    _setup_logging(verbose)
    overrides: dict[str, Any] = {"data_dir": data_dir}
    if model_name:
        overrides["model"] = {"name_or_path": model_name}
    if store_url:
        overrides["store"] = {"url": store_url}
    ctx.obj = State(config, overrides)


for _command in (
    commands_data.ingest,
    commands_data.search,
    commands_data.collections,
    commands_data.delete,
    commands_eval.eval_command,
    commands_eval.compare,
    commands_serve.serve,
    commands_serve.feedback,
    commands_tune.retune,
    commands_tune.synth,
    commands_tune.models,
    commands_tune.rollback,
    commands_tune.push,
):
    main.add_command(_command)
