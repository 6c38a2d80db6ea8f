"""Lexical (BM25) sparse vectors: the keyword half of hybrid search.

Each chunk gets a sparse vector of BM25 term-frequency weights, and each query a sparse vector
of its unique terms (weight 1). The collection's `lex` vector is created with Qdrant's IDF
modifier, so Qdrant multiplies by the inverse document frequency at query time from the
collection's live statistics: adding or deleting chunks never leaves stale weights behind, and
a query scores `sum over shared terms of idf(t) * tf_weight(t, chunk)` -- BM25.

Tokenizing and weighting is Qdrant's own BM25 model (`qdrant_edge.Bm25`, the same code as a
Qdrant server's `qdrant/bm25` inference): lowercase, split on word boundaries, drop stop words
of the language, Snowball-stem, hash each term to a 32-bit index. The weight of a term seen
`tf` times in a chunk of `len` terms is `tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`.
`avg_len` is a fixed setting (Qdrant's model does not count the corpus); a collection records
the `LexicalSpec` it was built with, and every vector of it (documents and queries, now and
after a re-embedding) is made with that same spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEXICAL_VECTOR = "lex"
"""Name of the sparse vector in every collection that has one."""

LANGUAGES = (
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
)
"""Languages with both a stop-word list and a Snowball stemmer in Qdrant's tokenizer."""


class LexicalSpec(BaseModel):
    """How a collection's sparse vectors are made (recorded in its spec).

    Attributes:
        language: Stop words and stemmer of this language (see `LANGUAGES`).
        stemming: Snowball-stem terms ("running" and "runs" become "run").
        stopwords: Drop the language's stop words.
        extra_stopwords: More words to drop (lowercase).
        k1: BM25 term-frequency saturation.
        b: BM25 length normalization (0 = none, 1 = full).
        avg_len: The chunk length (in terms) that `b` normalizes against.
        version: Of this recipe; bump if the weighting ever changes.
    """

    model_config = ConfigDict(frozen=True)

    language: str = "english"
    stemming: bool = True
    stopwords: bool = True
    extra_stopwords: tuple[str, ...] = ()
    k1: float = Field(default=1.2, ge=0, le=10)
    b: float = Field(default=0.75, ge=0, le=1)
    avg_len: float = Field(default=100.0, gt=0)
    version: Literal[1] = 1

    @field_validator("language")
    @classmethod
    def _language_known(cls, language: str) -> str:
        if language.lower() not in LANGUAGES:
            raise ValueError(
                f"lexical language {language!r} is not supported; "
                f"choose one of: {', '.join(LANGUAGES)}"
            )
        return language.lower()


@dataclass(frozen=True)
class SparseVector:
    """Term indices and their weights (same length; indices unique)."""

    indices: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.indices)


class LexicalEncoder:
    """Sparse BM25 vectors for chunks and queries, made to one `LexicalSpec`."""

    def __init__(self, spec: LexicalSpec) -> None:
        import qdrant_edge as qe

        self.spec = spec
        language = spec.language.capitalize()
        stemmer: Any = (
            qe.SnowballParams(getattr(qe.SnowballLanguage, language))
            if spec.stemming
            else qe.DisabledStemmer()
        )
        languages = {getattr(qe.Language, language)} if spec.stopwords else set()
        stopwords = qe.StopwordsSet(
            languages=languages, custom={w.lower() for w in spec.extra_stopwords}
        )
        self._model = qe.Bm25(
            qe.Bm25Config(
                k=spec.k1,
                b=spec.b,
                avg_len=spec.avg_len,
                language=spec.language,
                stopwords=stopwords,
                stemmer=stemmer,
            )
        )

    def documents(self, texts: list[str]) -> list[SparseVector]:
        """BM25 term-frequency weights of each text (an empty vector if no term is left)."""
        return [_plain(self._model.embed_document(t)) for t in texts]

    def queries(self, texts: list[str]) -> list[SparseVector]:
        """Each text's unique terms, weight 1."""
        return [_plain(self._model.embed_query(t)) for t in texts]


@lru_cache(maxsize=16)
def lexical_encoder(spec: LexicalSpec) -> LexicalEncoder:
    """The (cached) encoder of `spec`."""
    return LexicalEncoder(spec)


def _plain(vector: Any) -> SparseVector:
    return SparseVector(list(vector.indices), [float(v) for v in vector.values])
