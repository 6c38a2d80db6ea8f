"""Ingest with the real packaged model into a real embedded store."""

import pytest

from ragctl.core.collections import open_or_create
from ragctl.core.records import Document
from ragctl.core.settings import load_settings
from ragctl.core.store.edge import EdgeStore
from ragctl.ingest.loaders import Skipped
from ragctl.ingest.pipeline import ingest_documents, ingest_paths, make_chunker

PARAGRAPH = (
    "Espresso is brewed by forcing hot water through finely ground coffee. The grind size, "
    "dose and yield decide the taste, and baristas adjust them every morning. "
)


@pytest.fixture
def setup(tmp_path, real_encoder):
    settings = load_settings(data_dir=tmp_path / "data")
    store = EdgeStore(settings.qdrant_path)
    target = open_or_create(store, settings, "docs", encoder=real_encoder)
    yield target, make_chunker(target.encoder, 64, 8)
    store.close()


def _docs(long_text):
    return [
        Document("long", long_text, "long.txt"),
        Document("short", "Milk is steamed to 60 degrees Celsius.", "short.txt"),
    ]


def test_ingest_is_idempotent_and_replaces_only_changed_chunks(setup):
    target, chunker = setup
    store, physical = target.store, target.physical
    long_text = "\n\n".join(f"Section {i}. " + PARAGRAPH * 2 for i in range(6))
    first = ingest_documents(_docs(long_text), target, chunker)
    total = store.count(physical)
    assert first.documents == 2 and first.chunks_written == total > 6

    again = ingest_documents(_docs(long_text), target, chunker)
    assert (again.chunks_written, again.chunks_deleted, again.unchanged) == (0, 0, 2)
    assert store.count(physical) == total

    before = store.chunk_ids_of(physical, ["long", "short"])
    edited = long_text.replace("Section 5.", "Section five, rewritten.")
    changed = ingest_documents(_docs(edited), target, chunker)
    after = store.chunk_ids_of(physical, ["long", "short"])
    assert after["short"] == before["short"]
    replaced = before["long"] - after["long"]
    assert changed.chunks_written == changed.chunks_deleted == len(replaced) >= 1
    assert len(replaced) < len(before["long"])  # only the edited part, not the whole document
    assert store.count(physical) == total


def test_ingest_chunks_fit_the_model_and_keep_offsets(setup):
    target, chunker = setup
    store, physical, encoder = target.store, target.physical, target.encoder
    text = PARAGRAPH * 40
    ingest_documents([Document("d", text, "d.txt")], target, chunker)
    stored = [c for batch in store.scroll_chunks(physical) for c in batch]
    assert len(stored) > 1
    for chunk in stored:
        assert text[chunk.start : chunk.end] == chunk.text
        tokens = encoder.tokenizer.encode(chunk.text).ids  # with special tokens
        assert len(tokens) <= min(64 + 2, encoder.max_seq_length)


def test_ingest_reports_skipped_and_keeps_stored_data(setup, tmp_path):
    target, chunker = setup
    store, physical = target.store, target.physical
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nGrinders are cleaned every Monday.")
    (folder / "empty.txt").write_text("   \n")
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    report = ingest_paths([folder], target, chunker, base_dir=tmp_path)
    assert report.documents == 1 and report.chunks_written == 1
    assert sorted(s.source for s in report.skipped) == ["in/blob.txt", "in/empty.txt"]
    # The good document is now unreadable: it is skipped and its stored chunks stay.
    (folder / "good.md").write_bytes(b"\x00" * 10)
    report = ingest_paths([folder], target, chunker, base_dir=tmp_path)
    assert report.chunks_deleted == 0 and store.count(physical) == 1


def test_ingest_duplicate_doc_id_later_wins(setup):
    target, chunker = setup
    store, physical = target.store, target.physical
    items = [
        Document("same", "first version of the text", "a.jsonl:1"),
        Skipped("a.jsonl:2", "line 2: missing field 'text'"),
        Document("same", "second version of the text", "b.jsonl:1"),
    ]
    report = ingest_documents(items, target, chunker)
    assert report.documents == 1 and len(report.skipped) == 1
    [chunk] = [c for batch in store.scroll_chunks(physical) for c in batch]
    assert chunk.text == "second version of the text"


def test_open_or_create_keeps_the_collection_model(tmp_path, real_encoder):
    settings = load_settings(data_dir=tmp_path / "data")
    with EdgeStore(settings.qdrant_path) as store:
        spec = open_or_create(store, settings, "docs", encoder=real_encoder).spec
        assert (spec.physical, spec.model, spec.dim, spec.shortlist_dims) == (
            "docs__v1",
            "default",
            384,
            (64,),
        )
        assert store.resolve("docs") == "docs__v1"
        again = open_or_create(store, settings, "docs", encoder=real_encoder)
        assert again.spec == spec and again.encoder is real_encoder


def test_ingest_streams_a_long_document_part_by_part(tmp_path):
    from ragctl.ingest.chunker import Chunker
    from ragctl.ingest.streaming import PART_CHUNKS
    from ragctl.retriever.testing import KeywordEncoder

    settings = load_settings(data_dir=tmp_path / "data")
    encoder = KeywordEncoder()
    with EdgeStore(settings.qdrant_path) as store:
        target = open_or_create(store, settings, "docs", encoder=encoder)
        chunker = Chunker(encoder.tokenizer, 32, 4, 128, segment_chars=20_000)
        text = "\n\n".join(f"Section {i}. " + PARAGRAPH * 2 for i in range(150))
        steps = []

        def ingest(body):
            return ingest_documents(
                [Document("short", "Milk is steamed to 60 degrees.", "s.txt"),
                 Document("long", body, "long.txt")],
                target, chunker,
                on_progress=lambda r: steps.append((r.documents, r.chunks_written)),
            )  # fmt: skip

        first = ingest(text)
        stored = store.chunk_ids_of(target.physical, ["long"])["long"]
        assert first.documents == 2 and first.chunks_written == len(stored) + 1 > PART_CHUNKS
        # Progress moved while the long document was still being written (documents == 1).
        assert [s for s in steps if s[0] == 1 and 1 < s[1] < first.chunks_written]
        assert stored == {c.chunk_id for c in chunker.iter_chunks(Document("long", text, "x"))}

        again = ingest(text)
        assert (again.unchanged, again.chunks_written, again.chunks_deleted) == (2, 0, 0)

        edited = text.replace("Section 149.", "Section 149, rewritten.")
        changed = ingest(edited)
        after = store.chunk_ids_of(target.physical, ["long"])["long"]
        assert changed.chunks_written == changed.chunks_deleted == len(stored - after) >= 1
        assert len(after) == len(stored)
