"""The BM25 sparse vectors: tokenizing, weighting, and the recipe a collection records."""

import pytest
from pydantic import ValidationError

from ragctl.core.lexical import LexicalEncoder, LexicalSpec
from ragctl.core.settings import LexicalSettings
from ragctl.core.store.base import CollectionSpec


def _weights(encoder, text):
    vector = encoder.documents([text])[0]
    return dict(zip(vector.indices, vector.values, strict=True))


def _index(encoder, word):
    [vector] = encoder.queries([word])
    assert len(vector) == 1, word
    return vector.indices[0]


def test_lexical_stems_and_drops_stop_words():
    encoder = LexicalEncoder(LexicalSpec())
    assert _index(encoder, "running") == _index(encoder, "runs") == _index(encoder, "run")
    assert len(encoder.queries(["the of and"])[0]) == 0
    query = encoder.queries(["The appeals of the court, the COURT"])[0]
    assert len(query) == 2 and query.values == [1.0, 1.0]  # unique terms, weight 1


def test_lexical_stemming_stop_words_and_extra_words_are_configurable():
    plain = LexicalEncoder(LexicalSpec(stemming=False, stopwords=False))
    assert _index(plain, "running") != _index(plain, "runs")
    assert len(plain.queries(["the"])[0]) == 1
    extra = LexicalEncoder(LexicalSpec(extra_stopwords=("Plaintiff",)))
    assert len(extra.queries(["plaintiff court"])[0]) == 1


def test_lexical_term_indices_are_stable_across_encoders():
    one, two = LexicalEncoder(LexicalSpec()), LexicalEncoder(LexicalSpec())
    text = "Qdrant stores sparse vectors beside dense ones."
    assert one.documents([text]) == two.documents([text])


def test_lexical_weights_are_bm25_term_frequencies():
    spec = LexicalSpec(k1=1.2, b=0.75, avg_len=10)
    encoder = LexicalEncoder(spec)
    court = _index(encoder, "court")

    def expected(tf, length):
        norm = spec.k1 * (1 - spec.b + spec.b * length / spec.avg_len)
        return tf * (spec.k1 + 1) / (tf + norm)

    once = _weights(encoder, "court ruling")[court]
    twice = _weights(encoder, "court court")[court]
    assert once == pytest.approx(expected(1, 2), rel=1e-5)
    assert twice == pytest.approx(expected(2, 2), rel=1e-5)
    assert once < twice < 2 * once  # saturation
    long_doc = "court " + " ".join(f"word{i}" for i in range(30))
    assert _weights(encoder, long_doc)[court] < once  # longer chunk, lower weight
    flat = LexicalEncoder(LexicalSpec(b=0.0))
    assert _weights(flat, long_doc)[court] == pytest.approx(_weights(flat, "court x")[court])


def test_lexical_spec_rejects_bad_values_naming_what_is_allowed():
    with pytest.raises(ValidationError, match="klingon.*choose one of: arabic"):
        LexicalSpec(language="klingon")
    with pytest.raises(ValidationError, match=r"b\n.*less than or equal to 1"):
        LexicalSpec(b=1.5)
    with pytest.raises(ValidationError, match="'klingon' is not supported"):
        LexicalSettings(language="klingon")
    with pytest.raises(ValidationError, match="version"):  # a recipe this code cannot make
        LexicalSpec.model_validate({"version": 2})
    assert LexicalSettings(enabled=False).spec() is None
    assert LexicalSettings(language="German").spec() == LexicalSpec(language="german")


def test_lexical_recipe_travels_with_the_collection_spec():
    spec = CollectionSpec("docs", 2, "m", 8, (4,), lexical=LexicalSpec(avg_len=50, b=0.5))
    assert CollectionSpec.from_dict(spec.to_dict()) == spec
    old = spec.to_dict()
    del old["lexical"]  # a collection made before lexical vectors existed
    assert CollectionSpec.from_dict(old).lexical is None
    # The recipe as stored on disk: the same keys and values as ever.
    assert spec.to_dict()["lexical"] == {
        "language": "english",
        "stemming": True,
        "stopwords": True,
        "extra_stopwords": [],
        "k1": 1.2,
        "b": 0.5,
        "avg_len": 50.0,
        "version": 1,
    }
