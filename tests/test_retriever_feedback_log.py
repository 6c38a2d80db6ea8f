"""The search and feedback log: durability settings, concurrency, export, stats, backends."""

import os
import sqlite3
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragctl.core.settings import load_settings
from ragctl.retriever.errors import FeedbackLogError
from ragctl.retriever.feedback_log import (
    EXPORT_FIELDS,
    FeedbackEvent,
    FeedbackLog,
    SearchEvent,
    feedback_log_url,
    open_feedback_log,
    parse_since,
    redact_url,
)


def _feedback(i=0, label="relevant", version=1, created_at=None, search_id=None):
    extra = {"created_at": created_at} if created_at else {}
    return FeedbackEvent(
        query=f"query {i}",
        chunk_id=f"doc{i}#0@abc",
        doc_id=f"doc{i}",
        label=label,
        chunk_text=f"text of chunk {i} — ünïcode",
        model_version=version,
        collection=f"docs__v{version}",
        search_id=search_id,
        rank=1 if search_id else None,
        **extra,
    )


@pytest.fixture
def log(tmp_path):
    with FeedbackLog.open(f"sqlite:///{tmp_path / 'feedback.db'}") as opened:
        yield opened


def test_retriever_feedback_log_sqlite_is_wal_and_fsyncs_every_feedback_commit(log, tmp_path):
    with log._pool.connection() as conn:  # feedback
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with log._relaxed_pool.connection() as conn:  # search rows
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert log.dialect == "sqlite" and log.location == str(tmp_path / "feedback.db")


def test_retriever_feedback_log_round_trips_searches_and_feedback(log):
    search = SearchEvent("s1", "what is espresso?", 5, 2, "docs__v2", ("a#0@1", "b#0@2"), True)
    log.log_search(search)
    assert log.get_search("s1") == search
    assert log.get_search("nope") is None
    first = log.log_feedback(_feedback(1, search_id="s1"))
    second = log.log_feedback(_feedback(2, "not_relevant"))
    assert second == first + 1
    rows = list(log.iter_feedback())
    assert [tuple(r) for r in rows] == [EXPORT_FIELDS, EXPORT_FIELDS]
    assert rows[0]["search_id"] == "s1" and rows[0]["rank"] == 1
    assert rows[0]["chunk_text"] == "text of chunk 1 — ünïcode"
    assert rows[1]["label"] == "not_relevant" and rows[1]["search_id"] is None


def test_retriever_feedback_log_rejects_unknown_labels(log):
    with pytest.raises(FeedbackLogError, match="label must be one of relevant, not_relevant"):
        log.log_feedback(_feedback(label="maybe"))
    assert list(log.iter_feedback()) == []


def test_retriever_feedback_log_since_and_paging(log):
    for i in range(25):
        log.log_feedback(_feedback(i, created_at=f"2025-01-{i + 1:02d}T00:00:00.000000+00:00"))
    assert len(list(log.iter_feedback(page=7))) == 25
    since = parse_since("2025-01-20")
    assert [r["doc_id"] for r in log.iter_feedback(since, page=4)] == [
        f"doc{i}" for i in range(19, 25)
    ]
    assert parse_since("2025-01-20T02:00:00+02:00") == "2025-01-20T00:00:00.000000+00:00"
    assert parse_since("2025-01-20T00:00:00Z") == since
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        parse_since("last tuesday")


def test_retriever_feedback_log_stats(log):
    for i, (label, version) in enumerate(
        [("relevant", 1), ("relevant", 1), ("not_relevant", 1), ("relevant", 2)]
    ):
        log.log_feedback(_feedback(i, label, version))
    for i, version in enumerate([1, 1, 2]):
        log.log_search(SearchEvent(f"s{i}", "q", 10, version, f"docs__v{version}", ()))
    stats = log.stats()
    assert (stats.searches, stats.feedback) == (3, 4)
    assert stats.by_label == {"relevant": 3, "not_relevant": 1}
    assert stats.feedback_by_model_version == {
        1: {"relevant": 2, "not_relevant": 1},
        2: {"relevant": 1, "not_relevant": 0},
    }
    assert stats.searches_by_model_version == {1: 2, 2: 1}


def test_retriever_feedback_log_concurrent_writers_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackLog.open(url) as first, FeedbackLog.open(url) as second:

        def write(i):
            target = first if i % 2 else second
            target.log_search(SearchEvent(uuid.uuid4().hex, f"q{i}", 10, 1, "docs__v1", ()))
            return target.log_feedback(_feedback(i))

        with ThreadPoolExecutor(max_workers=16) as pool:
            ids = list(pool.map(write, range(400)))
        assert len(set(ids)) == 400
        assert first.stats().feedback == 400 and second.stats().searches == 400


def test_retriever_feedback_log_reader_sees_commits_while_writer_is_open(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackLog.open(url) as writer:
        writer.log_feedback(_feedback(1))
        with FeedbackLog.open(url, create=False) as reader:
            assert len(list(reader.iter_feedback())) == 1
            writer.log_feedback(_feedback(2))
            assert len(list(reader.iter_feedback())) == 2


def test_retriever_feedback_log_survives_a_killed_writer(tmp_path):
    """A child process logs, says so, and is SIGKILLed: everything it acknowledged is there."""
    import subprocess

    db = tmp_path / "feedback.db"
    script = (
        "import sys, os, signal\n"
        "from retriever.feedback_log import FeedbackLog, FeedbackEvent, SearchEvent\n"
        f"log = FeedbackLog.open({str(db)!r})\n"
        "for i in range(50):\n"
        "    log.log_search(SearchEvent(f's{i}', 'q', 10, 1, 'docs__v1', ()))\n"
        "    log.log_feedback(FeedbackEvent('q', f'c{i}', 'd', 'relevant', 't', 1, 'docs__v1'))\n"
        "    print(i, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert done.returncode == -9
    acknowledged = len(done.stdout.split())
    assert acknowledged == 50
    with FeedbackLog.open(str(db), create=False) as log:
        stats = log.stats()
        assert stats.feedback == stats.searches == acknowledged


def test_retriever_feedback_log_urls_and_errors(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    assert feedback_log_url(settings) == f"sqlite:///{tmp_path / 'data' / 'feedback.db'}"
    with pytest.raises(FeedbackLogError, match="no feedback log at .*nothing was logged yet"):
        open_feedback_log(settings, create=False)
    with open_feedback_log(settings) as log:
        assert log.stats().feedback == 0
    with pytest.raises(FeedbackLogError, match="must be sqlite:///PATH or postgresql"):
        FeedbackLog.open("mysql://u:secret@db/x")
    assert redact_url("postgresql://user:s3cret@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert redact_url("postgresql://db/x") == "postgresql://db/x"


def test_retriever_feedback_log_sqlite_file_is_plain_sqlite(log, tmp_path):
    log.log_feedback(_feedback(7))
    conn = sqlite3.connect(tmp_path / "feedback.db")
    assert conn.execute("SELECT doc_id FROM feedback").fetchall() == [("doc7",)]
    conn.close()


def test_retriever_feedback_log_postgres_needs_psycopg(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import fails as if not installed
    with pytest.raises(FeedbackLogError, match=r"psycopg 3 is not installed.*ragctl\[postgres\]"):
        FeedbackLog.open("postgresql://user:pw@127.0.0.1:5432/ragctl")


# Read at import: the autouse fixture clears RAGCTL_* variables before each test.
TEST_DATABASE_URL = os.environ.get("RAGCTL_TEST_DATABASE_URL")


@pytest.mark.skipif(
    not TEST_DATABASE_URL,
    reason="set RAGCTL_TEST_DATABASE_URL=postgresql://... to test the PostgreSQL backend",
)
def test_retriever_feedback_log_postgres_round_trip():
    with FeedbackLog.open(TEST_DATABASE_URL) as log:
        assert log.dialect == "postgresql"
        with log._pool.connection() as conn:
            conn.execute("TRUNCATE searches, feedback")
        search_id = uuid.uuid4().hex
        log.log_search(SearchEvent(search_id, "q", 3, 1, "docs__v1", ("a", "b"), True))
        assert log.get_search(search_id).chunk_ids == ("a", "b")
        lock = threading.Lock()
        ids = []

        def write(i):
            feedback_id = log.log_feedback(_feedback(i, search_id=search_id))
            with lock:
                ids.append(feedback_id)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(write, range(40)))
        assert len(set(ids)) == 40 and log.stats().feedback == 40
        rows = list(log.iter_feedback(page=7))
        assert [r["feedback_id"] for r in rows] == sorted(ids)
        assert {r["doc_id"] for r in rows} == {f"doc{i}" for i in range(40)}


def test_retriever_feedback_log_idempotency_key_stores_once(log):
    keyed = FeedbackEvent(**{**_feedback(1).__dict__, "idempotency_key": "retry-1"})
    first, stored = log.log_feedback_once(keyed)
    again, stored_again = log.log_feedback_once(keyed)
    assert (stored, stored_again) == (True, False) and again == first
    assert log.log_feedback(keyed) == first
    assert log.feedback_by_key("retry-1")[0] == first
    assert log.feedback_by_key("other") is None
    other = log.log_feedback(FeedbackEvent(**{**_feedback(2).__dict__, "idempotency_key": "k2"}))
    unkeyed = [log.log_feedback(_feedback(3)) for _ in range(2)]  # no key: each one stored
    assert len({first, other, *unkeyed}) == 4 and log.stats().feedback == 4


def test_retriever_feedback_log_marks_free_text_and_migrates_old_logs(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the schema before free_text and idempotency keys
        conn.executescript(
            """CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, search_id TEXT,
               query TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
               label TEXT NOT NULL, chunk_text TEXT NOT NULL, model_version INTEGER NOT NULL,
               collection TEXT NOT NULL, rank INTEGER, created_at TEXT NOT NULL);
               INSERT INTO feedback VALUES (1, NULL, 'typed', 'a#0@1', 'a', 'relevant', 't', 1,
                                            'docs__v1', NULL, '2025-01-01');
               INSERT INTO feedback VALUES (2, 's1', 'asked', 'a#0@1', 'a', 'relevant', 't', 1,
                                            'docs__v1', 1, '2025-01-02');"""
        )
    with FeedbackLog.open(f"sqlite:///{path}") as log:
        log.log_feedback(FeedbackEvent(**{**_feedback(3).__dict__, "free_text": True}))
        rows = list(log.iter_feedback())
        assert [(r["query"], r["free_text"]) for r in rows] == [
            ("typed", True), ("asked", False), ("query 3", True)
        ]  # fmt: skip
        assert log.stats().free_text == 2
    with FeedbackLog.open(f"sqlite:///{path}") as log:  # opening again changes nothing
        assert len(list(log.iter_feedback())) == 3
