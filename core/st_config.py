"""What a sentence-transformers model folder says about turning token vectors into embeddings.

Pure JSON reading, no torch: the ONNX encoder (`core.onnx_encoder`) applies exactly what the
folder's own files configure, resolved the way sentence-transformers 6.x resolves them:

- `modules.json`: the module pipeline. Supported: Transformer -> Pooling [-> Normalize].
- `<pooling path>/config.json`: pooling mode(s) and `include_prompt` (old `pooling_mode_*_token`
  booleans and the newer `pooling_mode` string/list both read).
- `sentence_bert_config.json`: `max_seq_length` and `do_lower_case` (older saves), else the
  tokenizer's `model_max_length` capped at the model's `max_position_embeddings` (newer saves).
- `config_sentence_transformers.json`: named prompts and `default_prompt_name`.
- `tokenizer.json` / `tokenizer_config.json`: the fast tokenizer, pad token, padding side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.core.errors import ModelLoadError

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "lasttoken")
"""Pooling modes the ONNX encoder implements (sentence-transformers' `weightedmean` is not)."""

# Old boolean keys, in the order sentence-transformers concatenates their outputs.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# The Transformer module's config file, newest name first (sentence-transformers tries them all).
_TRANSFORMER_CONFIG_FILES = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# transformers' "no limit" model_max_length (int(1e30)); anything this large means unset.
_NO_LIMIT = 10**20


class UnsupportedModelError(ModelLoadError):
    """The model folder uses a module or option the ONNX encoder does not implement."""


@dataclass(frozen=True)
class SentenceTransformerConfig:
    """The parts of a sentence-transformers folder that shape an embedding.

    Attributes:
        dim: Embedding size (pooled size: token dim x number of pooling modes).
        pooling_modes: Pooling modes, concatenated in this order.
        include_prompt: False: prompt tokens are left out of pooling.
        normalize: The pipeline ends with a Normalize module.
        max_seq_length: Longest input in tokens (special tokens included).
        do_lower_case: Lower-case text before tokenizing (older configs).
        prompts: Named prompts (`query`, `document`, ...).
        default_prompt_name: The prompt applied when a caller gives none.
        pad_token: The tokenizer's padding token (None: the tokenizer file's own setting).
        padding_side: `right` or `left`.
        truncation_side: `right` or `left`.
    """

    dim: int
    pooling_modes: tuple[str, ...]
    include_prompt: bool
    normalize: bool
    max_seq_length: int
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    pad_token: str | None = None
    padding_side: str = "right"
    truncation_side: str = "right"

    @property
    def default_prompt(self) -> str:
        """The text sentence-transformers puts before inputs given no prompt ('' if none)."""
        if self.default_prompt_name is None:
            return ""
        return self.prompts.get(self.default_prompt_name, "")


def read_config(model_dir: Path) -> SentenceTransformerConfig:
    """Read the embedding recipe of the sentence-transformers folder `model_dir`.

    Raises:
        ModelLoadError: A needed file is missing or unreadable.
        UnsupportedModelError: The pipeline has a module or pooling mode not implemented here.
    """
    model_dir = Path(model_dir)
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ModelLoadError(f"{model_dir / 'modules.json'} lists no modules")
    kinds = [_module_kind(m.get("type", "")) for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        found = [m.get("type", "?") for m in modules]
        raise UnsupportedModelError(
            f"model {model_dir} has modules {found}; the ONNX encoder supports "
            "Transformer -> Pooling [-> Normalize] (use model.backend = 'torch')"
        )
    if modules[0].get("path", "") not in ("", "."):
        raise UnsupportedModelError(
            f"model {model_dir}: the Transformer module lives in a subfolder "
            f"({modules[0]['path']!r}); the ONNX encoder expects it at the folder's root"
        )
    transformer = _transformer_config(model_dir)
    modality = transformer.get("modality_config")
    if isinstance(modality, dict) and "text" not in modality:
        raise UnsupportedModelError(
            f"model {model_dir} takes {sorted(modality)} inputs; the ONNX encoder reads plain text"
        )
    task = transformer.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise UnsupportedModelError(
            f"model {model_dir} is a {task!r} transformer; the ONNX encoder supports "
            "'feature-extraction' only"
        )
    pooling = _read_json(model_dir / modules[1].get("path", "1_Pooling") / "config.json")
    modes, include_prompt, token_dim = _pooling(pooling, model_dir)
    st_config = _read_json(model_dir / "config_sentence_transformers.json", default={})
    tokenizer_config = _read_json(model_dir / "tokenizer_config.json", default={})
    hf_config = _read_json(model_dir / "config.json", default={})
    return SentenceTransformerConfig(
        dim=token_dim * len(modes),
        pooling_modes=modes,
        include_prompt=include_prompt,
        normalize=len(kinds) > 2,
        max_seq_length=_max_seq_length(transformer, tokenizer_config, hf_config, model_dir),
        do_lower_case=bool(transformer.get("do_lower_case", False)),
        prompts={str(k): str(v) for k, v in (st_config.get("prompts") or {}).items()},
        default_prompt_name=st_config.get("default_prompt_name"),
        pad_token=_token_text(tokenizer_config.get("pad_token")),
        padding_side=str(tokenizer_config.get("padding_side") or "right"),
        truncation_side=str(tokenizer_config.get("truncation_side") or "right"),
    )


def _module_kind(type_name: str) -> str:
    """`sentence_transformers.models.Pooling` (older) or `...modules.pooling.Pooling` -> Pooling."""
    if not type_name.startswith("sentence_transformers."):
        return type_name or "?"
    return type_name.rsplit(".", 1)[-1]


def _transformer_config(model_dir: Path) -> dict[str, Any]:
    for name in _TRANSFORMER_CONFIG_FILES:
        path = model_dir / name
        if path.is_file():
            config = _read_json(path)
            return config if isinstance(config, dict) else {}
    return {}


def _pooling(config: dict[str, Any], model_dir: Path) -> tuple[tuple[str, ...], bool, int]:
    token_dim = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    if not isinstance(token_dim, int) or token_dim < 1:
        raise ModelLoadError(f"model {model_dir}: the pooling config names no embedding dimension")
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key, False))
        modes = modes or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unsupported = [m for m in modes if m not in POOLING_MODES]
    if unsupported:
        raise UnsupportedModelError(
            f"model {model_dir} pools with {unsupported}; the ONNX encoder supports "
            f"{list(POOLING_MODES)} (use model.backend = 'torch')"
        )
    return modes, bool(config.get("include_prompt", True)), token_dim


def _max_seq_length(
    transformer: dict[str, Any],
    tokenizer_config: dict[str, Any],
    hf_config: dict[str, Any],
    model_dir: Path,
) -> int:
    """sentence-transformers' rule: an explicit limit wins; else the tokenizer's, capped at the
    model's position embeddings."""
    explicit = transformer.get("max_seq_length")
    if explicit is None:
        for key in ("processor_kwargs", "tokenizer_args"):
            explicit = (transformer.get(key) or {}).get("model_max_length", explicit)
    if isinstance(explicit, int) and explicit > 0:
        return explicit
    positions = hf_config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        positions = None
    tokenizer_limit = tokenizer_config.get("model_max_length")
    if not isinstance(tokenizer_limit, int) or tokenizer_limit <= 0 or tokenizer_limit > _NO_LIMIT:
        tokenizer_limit = None
    limits = [v for v in (tokenizer_limit, positions) if v is not None]
    if not limits:
        raise ModelLoadError(
            f"model {model_dir} states no sequence limit (max_seq_length, the tokenizer's "
            "model_max_length or max_position_embeddings)"
        )
    return min(limits)


def _token_text(token: Any) -> str | None:
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        if default is not None:
            return default
        raise ModelLoadError(
            f"not a sentence-transformers model folder: {path} is missing"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
