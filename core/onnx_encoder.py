"""A torch-free encoder: `tokenizers` + `onnxruntime` + numpy running an exported model.

It reproduces what sentence-transformers computes for the same folder (prompt, tokenization,
truncation, pooling, Normalize; see `core.st_config`) on the transformer exported by
`core.onnx_export`, and is a `core.encoder.Encoder` like `SentenceTransformerEncoder`, so
search, ingest and evaluation can use either. Importing or using this module never imports
torch, transformers or sentence-transformers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import ConfigError, ModelLoadError
from ragctl.core.matryoshka import normalize, truncate
from ragctl.core.st_config import SentenceTransformerConfig, UnsupportedModelError, read_config

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

ONNX_SUBDIR = "onnx"
"""Where an export lives by default: `<model folder>/onnx/` (sentence-transformers' layout)."""
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
MANIFEST_FILE = "export.json"

OUTPUT_NAME = "token_embeddings"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""Inputs an export may take (all int64, shape (batch, sequence))."""

# Below this many texts a progress bar is noise (as in core.encoder).
_PROGRESS_MIN_TEXTS = 256


class OnnxEncoder:
    """An exported sentence-transformers model run by onnxruntime on CPU.

    Build one with `OnnxEncoder.load(model_dir, onnx_file, ...)`. Batches are formed from texts
    sorted by length (as sentence-transformers does), so padding wastes little.
    """

    def __init__(
        self,
        session: InferenceSession,
        tokenizer: Tokenizer,
        config: SentenceTransformerConfig,
        *,
        model_ref: str,
        shortlist_dims: Sequence[int],
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        batch_size: int = 64,
        backend: str = "onnx",
    ) -> None:
        self.model_ref = model_ref
        self.backend = backend
        self.batch_size = batch_size
        self.config = config
        self.dim: int = config.dim
        too_big = [d for d in shortlist_dims if d >= self.dim]
        if too_big:
            raise ConfigError(
                f"shortlist dims {too_big} must be smaller than the dimension of model "
                f"{model_ref!r} ({self.dim})"
            )
        self.shortlist_dims: tuple[int, ...] = tuple(sorted(shortlist_dims))
        own = config.prompts
        self.query_prompt: str = (
            query_prompt if query_prompt is not None else own.get("query") or ""
        )
        self.document_prompt: str = (
            document_prompt if document_prompt is not None else own.get("document") or ""
        )
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]
        unknown = [n for n in self._input_names if n not in MODEL_INPUTS]
        if unknown:
            raise UnsupportedModelError(
                f"ONNX model of {model_ref!r} takes inputs {unknown}; supported: {MODEL_INPUTS}"
            )
        outputs = [o.name for o in session.get_outputs()]
        self._output_name = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        self._tokenizer = _configured_tokenizer(tokenizer, config)
        self._plain_tokenizer = _plain_copy(tokenizer, config)
        added = tokenizer.get_added_tokens_decoder()
        self._special_ids = {token_id for token_id, token in added.items() if token.special}
        self._prompt_lengths: dict[str, int] = {}

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        onnx_file: str | Path,
        *,
        model_ref: str,
        shortlist_dims: Sequence[int],
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        backend: str = "onnx",
    ) -> OnnxEncoder:
        """Load the export `onnx_file` of the sentence-transformers folder `model_dir`.

        Args:
            model_dir: The model folder (its configs and `tokenizer.json` are read).
            onnx_file: The exported transformer (`model.onnx` or `model_int8.onnx`).
            threads: onnxruntime intra-op threads (None = one per physical core).
            backend: The name this encoder reports (`onnx` or `onnx-int8`).

        Raises:
            ModelLoadError: A file is missing or unreadable, or the model is unsupported.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        onnx_file = Path(onnx_file)
        config = read_config(model_dir)
        tokenizer_file = model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelLoadError(
                f"model {model_ref!r} has no tokenizer.json in {model_dir}; the ONNX encoder "
                "needs the fast tokenizer's file (use model.backend = 'torch')"
            )
        if not onnx_file.is_file():
            raise ModelLoadError(
                f"no ONNX export of model {model_ref!r} at {onnx_file}; export it with "
                "ragctl.core.onnx_export.export_onnx or use model.backend = 'torch'"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT warns about unused initializers
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            session = ort.InferenceSession(
                str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime and tokenizers raise their own error types
            raise ModelLoadError(f"cannot load ONNX model {onnx_file}: {exc}") from exc
        logger.info("loaded %s export of %s from %s", backend, model_ref, onnx_file)
        return cls(
            session,
            tokenizer,
            config,
            model_ref=model_ref,
            shortlist_dims=shortlist_dims,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            batch_size=batch_size,
            backend=backend,
        )

    @property
    def device(self) -> str:
        """Where the model runs: onnxruntime's CPU provider."""
        return "cpu"

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens (special tokens included) the model reads without truncating."""
        return self.config.max_seq_length

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's fast tokenizer, without truncation or padding (for counting tokens)."""
        return self._plain_tokenizer

    @property
    def document_prompt_tokens(self) -> int:
        """Tokens the document prompt adds in front of every chunk."""
        if not self.document_prompt:
            return 0
        return len(self._tokenizer.encode(self.document_prompt, add_special_tokens=False).ids)

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        """Embed search queries (query prompt applied)."""
        return self.embeddings_from_full(self.encode_full(texts, self.query_prompt))

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        """Embed chunks (document prompt applied), with a progress bar for long inputs."""
        return self.embeddings_from_full(
            self.encode_full(texts, self.document_prompt, show_progress=show_progress)
        )

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        """Normalized full-size vectors only (evaluation truncates them itself)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # As sentence-transformers: no prompt given -> the model's default prompt, if any.
        prompt = prompt or self.config.default_prompt
        inputs = [prompt + text for text in texts] if prompt else list(texts)
        skip = 0 if self.config.include_prompt or not prompt else self._prompt_length(prompt)
        order = np.argsort([-len(text) for text in inputs], kind="stable")
        out = np.empty((len(inputs), self.dim), dtype=np.float32)
        starts = range(0, len(inputs), self.batch_size)
        if show_progress and len(inputs) >= _PROGRESS_MIN_TEXTS:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        for start in starts:
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([inputs[i] for i in rows], skip)
        return normalize(out)

    def embeddings_from_full(self, full: NDArray[np.float32]) -> Embeddings:
        """Derive the shortlist vectors of already-normalized full vectors."""
        return Embeddings(full=full, shortlist={d: truncate(full, d) for d in self.shortlist_dims})

    def _encode_batch(self, texts: list[str], prompt_tokens: int) -> NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed: dict[str, Any] = {}
        for name in self._input_names:
            if name == "input_ids":
                feed[name] = np.array([e.ids for e in encodings], dtype=np.int64)
            elif name == "attention_mask":
                feed[name] = mask
            else:
                feed[name] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        tokens = self._session.run([self._output_name], feed)[0]
        pooled = pool(tokens, mask, self.config.pooling_modes, prompt_tokens)
        return normalize(pooled) if self.config.normalize else pooled

    def _prompt_length(self, prompt: str) -> int:
        """Tokens of the prompt, special tokens in front included, a trailing one not (as
        sentence-transformers counts what `include_prompt = False` leaves out of pooling)."""
        if prompt not in self._prompt_lengths:
            ids = self._tokenizer.encode(prompt).ids
            length = len(ids)
            if ids and ids[-1] in self._special_ids:
                length -= 1
            self._prompt_lengths[prompt] = length
        return self._prompt_lengths[prompt]


def pool(
    tokens: NDArray[np.float32],
    attention_mask: NDArray[np.int64],
    modes: Sequence[str],
    prompt_tokens: int = 0,
) -> NDArray[np.float32]:
    """sentence-transformers' Pooling on padded token vectors (batch, sequence, dim).

    Args:
        tokens: Token vectors.
        attention_mask: 1 for real tokens, 0 for padding.
        modes: Pooling modes, concatenated in order (`core.st_config.POOLING_MODES`).
        prompt_tokens: Leading tokens (after any left padding) left out of pooling.
    """
    tokens = np.asarray(tokens, dtype=np.float32)
    mask = attention_mask.copy()
    if prompt_tokens:
        pad_lengths = mask.argmax(axis=1)
        if not pad_lengths.any():
            mask[:, :prompt_tokens] = 0
        else:
            positions = np.arange(mask.shape[1])[None, :]
            mask[positions < (pad_lengths + prompt_tokens)[:, None]] = 0
    weights = mask[..., None].astype(np.float32)
    rows = np.arange(tokens.shape[0])
    parts: list[NDArray[np.float32]] = []
    for mode in modes:
        if mode == "cls":
            parts.append(tokens[rows, mask.argmax(axis=1)])
        elif mode == "max":
            parts.append(np.where(weights > 0, tokens, -np.inf).max(axis=1).astype(np.float32))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
            if mode == "mean_sqrt_len_tokens":
                counts = np.sqrt(counts)
            parts.append((tokens * weights).sum(axis=1) / counts)
        elif mode == "lasttoken":
            seq_len = mask.shape[1]
            flipped = mask[:, ::-1]
            last = np.where(flipped.max(axis=1) == 0, seq_len - 1, flipped.argmax(axis=1))
            parts.append((tokens * weights)[rows, seq_len - last - 1])
        else:
            raise UnsupportedModelError(f"pooling mode {mode!r} is not supported")
    return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)


def _plain_copy(tokenizer: Tokenizer, config: SentenceTransformerConfig) -> Tokenizer:
    """A copy that neither truncates nor pads (lower-casing first when the config says so)."""
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    if config.do_lower_case:
        current = tok.normalizer
        steps = [normalizers.Lowercase()] + ([current] if current is not None else [])
        tok.normalizer = normalizers.Sequence(steps)
    return tok


def _configured_tokenizer(tokenizer: Tokenizer, config: SentenceTransformerConfig) -> Tokenizer:
    """A copy that truncates to `max_seq_length` and pads each batch to its longest input."""
    tok = _plain_copy(tokenizer, config)
    tok.enable_truncation(config.max_seq_length, direction=config.truncation_side)
    own = tokenizer.padding or {}
    pad_token = config.pad_token or own.get("pad_token")
    pad_id = tok.token_to_id(pad_token) if pad_token else None
    if pad_id is None:
        raise UnsupportedModelError(
            f"the tokenizer has no padding token (pad_token={pad_token!r}); batches need one"
        )
    tok.enable_padding(
        direction=config.padding_side,
        pad_id=pad_id,
        pad_type_id=int(own.get("pad_type_id", 0)),
        pad_token=pad_token,
    )
    return tok
