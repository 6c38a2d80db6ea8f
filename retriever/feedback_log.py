"""The durable search and feedback log: SQLite (WAL, `synchronous=FULL`) or PostgreSQL.

Every search the retriever answers is logged (`searches`), and every judgement a client posts
(`feedback`) is stored with a snapshot of the chunk text and the model version that served it,
so the tuner can train on it even after the collection changes.

Durability: a feedback write returns only once the database has made it durable (SQLite in WAL
mode with `synchronous=FULL`: the commit is fsynced), so an acknowledged judgement survives a
crash of the process and of the machine. Search rows, written on every search, are committed
with `synchronous=NORMAL` (PostgreSQL: `synchronous_commit=off`): they survive a crash of the
process (SIGKILL) at once, and a power loss once any later feedback commit has fsynced the WAL
(it covers every earlier row), so the search a judgement names is always durable with it. Only
searches nobody judged can be lost, and only to a crash of the whole machine; in exchange a
search does not wait for a disk flush.

Thread-safe: connections come from a small pool, one thread per connection at a time. SQLite
readers (`ragctl feedback export`) never block the writer in WAL mode, so the file can be read
while the server runs. Several retriever replicas share one PostgreSQL database
(`feedback.database_url = "postgresql://..."`, needs the `postgres` extra: psycopg 3).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ragctl.retriever.errors import FeedbackLogError

if TYPE_CHECKING:
    from ragctl.core.settings import Settings

logger = logging.getLogger(__name__)

FEEDBACK_DB = "feedback.db"
LABELS: tuple[str, ...] = ("relevant", "not_relevant")
EXPORT_FIELDS: tuple[str, ...] = (
    "feedback_id",
    "query",
    "chunk_id",
    "doc_id",
    "label",
    "chunk_text",
    "model_version",
    "collection",
    "search_id",
    "rank",
    "created_at",
    "free_text",
)


def utc_now() -> str:
    """Now as fixed-width ISO 8601 in UTC (`2025-01-31T12:00:00.000000+00:00`), sortable as text."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def parse_since(text: str) -> str:
    """An ISO date or date-time as the log's timestamp format (naive values are UTC).

    Raises:
        ValueError: `text` is not an ISO 8601 date or date-time.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"not an ISO 8601 date or date-time: {text!r} (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class SearchEvent:
    """One answered search: what was asked, which model and collection answered, what came back."""

    search_id: str
    query: str
    k: int
    model_version: int
    collection: str
    chunk_ids: tuple[str, ...]
    single_stage: bool = False
    created_at: str = field(default_factory=utc_now)


@dataclass(frozen=True)
class FeedbackEvent:
    """One judgement of a chunk for a query, with the chunk's text as it was then.

    `rank` is the chunk's 1-based position in the search's results, None when the chunk was
    not among them (a relevant chunk the search missed) or no search was named.
    """

    query: str
    chunk_id: str
    doc_id: str
    label: str
    chunk_text: str
    model_version: int
    collection: str
    search_id: str | None = None
    rank: int | None = None
    created_at: str = field(default_factory=utc_now)
    # No search_id: the query is whatever the client wrote, not one the server answered.
    free_text: bool = False
    # A client's retry of the same judgement carries the same key and is stored once.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class FeedbackStats:
    """Counts for `ragctl feedback stats`."""

    searches: int
    feedback: int
    by_label: dict[str, int]
    feedback_by_model_version: dict[int, dict[str, int]]
    searches_by_model_version: dict[int, int]
    free_text: int = 0


_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS searches (
        search_id TEXT PRIMARY KEY,
        query TEXT NOT NULL,
        k INTEGER NOT NULL,
        model_version INTEGER NOT NULL,
        collection TEXT NOT NULL,
        chunk_ids TEXT NOT NULL,
        single_stage INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS searches_created_at ON searches (created_at)",
    """CREATE TABLE IF NOT EXISTS feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        search_id TEXT,
        query TEXT NOT NULL,
        chunk_id TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        label TEXT NOT NULL CHECK (label IN ('relevant', 'not_relevant')),
        chunk_text TEXT NOT NULL,
        model_version INTEGER NOT NULL,
        collection TEXT NOT NULL,
        rank INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS feedback_created_at ON feedback (created_at)",
)
# Columns added after the first release: added to an older log when it is opened.
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (column, SQLite type, PostgreSQL type); free_text is backfilled from search_id.
    ("free_text", "INTEGER NOT NULL DEFAULT 0", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("idempotency_key", "TEXT", "TEXT"),
)
_IDEMPOTENCY_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS feedback_idempotency_key ON feedback (idempotency_key)"
)
_POSTGRES_SCHEMA = tuple(
    statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY").replace(
        "single_stage INTEGER", "single_stage BOOLEAN"
    )
    for statement in _SQLITE_SCHEMA
)


class _Pool:
    """Idle connections handed to one thread at a time; broken ones are dropped."""

    def __init__(self, connect: Callable[[], Any], healthy: Callable[[Any], bool]) -> None:
        self._connect = connect
        self._healthy = healthy
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            if self._closed:
                raise FeedbackLogError("the feedback log is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            if not self._healthy(conn):
                conn.close()
                raise
            self._put(conn)
            raise
        self._put(conn)

    def _put(self, conn: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class FeedbackLog:
    """Searches and feedback in SQLite or PostgreSQL; safe to share between threads.

    Open with `open_feedback_log(settings)` or `FeedbackLog.open(url)`.
    """

    def __init__(
        self,
        *,
        dialect: str,
        connect: Callable[[bool], Any],
        location: str,
        errors: tuple[type[BaseException], ...],
        healthy: Callable[[Any], bool] = lambda conn: True,
    ) -> None:
        self.dialect = dialect
        self.location = location
        self._errors = errors
        self._param = "?" if dialect == "sqlite" else "%s"
        self._pool = _Pool(lambda: connect(True), healthy)  # durable commits (feedback)
        self._relaxed_pool = _Pool(lambda: connect(False), healthy)  # search rows
        schema = _SQLITE_SCHEMA if dialect == "sqlite" else _POSTGRES_SCHEMA
        with self._cursor() as cur:
            for statement in schema:
                cur.execute(statement)
            self._add_columns(cur)
            cur.execute(_IDEMPOTENCY_INDEX)

    def _add_columns(self, cur: Any) -> None:
        if self.dialect == "sqlite":
            cur.execute("PRAGMA table_info(feedback)")
            present = {row[1] for row in cur.fetchall()}
        else:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'feedback'"
            )
            present = {row[0] for row in cur.fetchall()}
        for column, sqlite_type, postgres_type in _ADDED_COLUMNS:
            if column in present:
                continue
            kind = sqlite_type if self.dialect == "sqlite" else postgres_type
            cur.execute(f"ALTER TABLE feedback ADD COLUMN {column} {kind}")
            if column == "free_text":
                true = "1" if self.dialect == "sqlite" else "TRUE"
                cur.execute(f"UPDATE feedback SET free_text = {true} WHERE search_id IS NULL")

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> FeedbackLog:
        """Open `sqlite:///PATH` (or a plain path) or `postgresql://...`.

        Args:
            url: Where the log lives.
            create: Create a missing SQLite file; False raises instead (for readers).

        Raises:
            FeedbackLogError: The database cannot be opened, or psycopg is missing.
        """
        if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            return cls._open_postgres(url.replace("postgresql+psycopg://", "postgresql://", 1))
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
        elif "://" in url:
            raise FeedbackLogError(
                f"feedback.database_url must be sqlite:///PATH or postgresql://..., got "
                f"{redact_url(url)!r}"
            )
        else:
            path = Path(url)
        return cls._open_sqlite(path, create=create)

    @classmethod
    def _open_sqlite(cls, path: Path, *, create: bool) -> FeedbackLog:
        if not path.exists():
            if not create:
                raise FeedbackLogError(
                    f"no feedback log at {path}: nothing was logged yet (the retriever "
                    "creates it on its first start)"
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FeedbackLogError(f"cannot create {path.parent}: {exc}") from exc

        def connect(durable: bool) -> sqlite3.Connection:
            try:
                conn = sqlite3.connect(
                    str(path), timeout=30.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: fsync every commit (power-loss safe); NORMAL: survives process crashes
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise FeedbackLogError(f"cannot open the feedback log {path}: {exc}") from exc
            return conn

        return cls(dialect="sqlite", connect=connect, location=str(path), errors=(sqlite3.Error,))

    @classmethod
    def _open_postgres(cls, url: str) -> FeedbackLog:
        try:
            import psycopg
        except ImportError as exc:
            raise FeedbackLogError(
                "feedback.database_url is a PostgreSQL URL but psycopg 3 is not installed; "
                "install the extra: pip install 'ragctl[postgres]'"
            ) from exc
        shown = redact_url(url)

        def connect(durable: bool) -> Any:
            try:
                conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
                if not durable:
                    conn.execute("SET synchronous_commit TO OFF")
                return conn
            except psycopg.Error as exc:
                raise FeedbackLogError(f"cannot connect to {shown}: {_one_line(exc)}") from exc

        return cls(
            dialect="postgresql",
            connect=connect,
            location=shown,
            errors=(psycopg.Error,),
            healthy=lambda conn: not conn.closed and not conn.broken,
        )

    # --- writes ---
    def log_search(self, event: SearchEvent) -> None:
        """Store one answered search (see the module docstring for its durability)."""
        self._execute(
            "INSERT INTO searches (search_id, query, k, model_version, collection, chunk_ids, "
            "single_stage, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.search_id,
                event.query,
                event.k,
                event.model_version,
                event.collection,
                json.dumps(list(event.chunk_ids), ensure_ascii=False),
                event.single_stage,
                event.created_at,
            ),
            durable=False,
        )

    def log_feedback(self, event: FeedbackEvent) -> int:
        """Store one judgement (durable when this returns); returns its feedback id.

        With an `idempotency_key` already stored, nothing is written and the stored
        judgement's id is returned (see `log_feedback_once`).
        """
        return self.log_feedback_once(event)[0]

    def log_feedback_once(self, event: FeedbackEvent) -> tuple[int, bool]:
        """Store one judgement unless its `idempotency_key` is stored: (feedback id, stored now)."""
        if event.label not in LABELS:
            raise FeedbackLogError(f"label must be one of {', '.join(LABELS)}, got {event.label!r}")
        rows = self._execute(
            "INSERT INTO feedback (search_id, query, chunk_id, doc_id, label, chunk_text, "
            "model_version, collection, rank, created_at, free_text, idempotency_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            (
                event.search_id,
                event.query,
                event.chunk_id,
                event.doc_id,
                event.label,
                event.chunk_text,
                event.model_version,
                event.collection,
                event.rank,
                event.created_at,
                event.free_text,
                event.idempotency_key,
            ),
            fetch=True,
        )
        if rows:
            return int(rows[0][0]), True
        stored = self.feedback_by_key(event.idempotency_key or "")
        if stored is None:  # pragma: no cover - a conflict means the row exists
            raise FeedbackLogError("feedback was neither stored nor found by its idempotency key")
        return stored[0], False

    def feedback_by_key(self, idempotency_key: str) -> tuple[int, FeedbackEvent] | None:
        """The judgement stored with `idempotency_key` and its id, or None."""
        rows = self._execute(
            "SELECT id, query, chunk_id, doc_id, label, chunk_text, model_version, collection, "
            "search_id, rank, created_at, free_text FROM feedback WHERE idempotency_key = ?",
            (idempotency_key,),
            fetch=True,
        )
        if not rows:
            return None
        (fid, query, chunk_id, doc_id, label, text, version, collection, search_id, rank,
         created_at, free_text) = rows[0]  # fmt: skip
        event = FeedbackEvent(
            query=query,
            chunk_id=chunk_id,
            doc_id=doc_id,
            label=label,
            chunk_text=text,
            model_version=int(version),
            collection=collection,
            search_id=search_id,
            rank=rank,
            created_at=created_at,
            free_text=bool(free_text),
            idempotency_key=idempotency_key,
        )
        return int(fid), event

    # --- reads ---
    def get_search(self, search_id: str) -> SearchEvent | None:
        """The logged search `search_id`, or None."""
        rows = self._execute(
            "SELECT search_id, query, k, model_version, collection, chunk_ids, single_stage, "
            "created_at FROM searches WHERE search_id = ?",
            (search_id,),
            fetch=True,
        )
        if not rows:
            return None
        sid, query, k, version, collection, chunk_ids, single_stage, created_at = rows[0]
        return SearchEvent(
            search_id=sid,
            query=query,
            k=int(k),
            model_version=int(version),
            collection=collection,
            chunk_ids=tuple(json.loads(chunk_ids)),
            single_stage=bool(single_stage),
            created_at=created_at,
        )

    def iter_feedback(
        self, since: str | None = None, *, page: int = 1000, collection: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Feedback rows as dicts (`EXPORT_FIELDS`), oldest first.

        Args:
            since: Only rows created at or after this timestamp (see `parse_since`).
            page: Rows fetched per query (keyset pagination; no long-lived read transaction).
            collection: Only judgements of this collection (any of its `NAME__vN`).
        """
        last_id = 0
        columns = ", ".join("id" if f == "feedback_id" else f for f in EXPORT_FIELDS)
        while True:
            sql = f"SELECT {columns} FROM feedback WHERE id > ?"
            params: list[Any] = [last_id]
            if since is not None:
                sql += " AND created_at >= ?"
                params.append(since)
            sql, params = _in_collection(sql, params, collection)
            sql += " ORDER BY id LIMIT ?"
            params.append(page)
            rows = self._execute(sql, tuple(params), fetch=True)
            for row in rows:
                record = dict(zip(EXPORT_FIELDS, row, strict=True))
                record["free_text"] = bool(record["free_text"])
                yield record
            if len(rows) < page:
                return
            last_id = int(rows[-1][0])

    def stats(self, *, collection: str | None = None) -> FeedbackStats:
        """Counts of searches and feedback, by label and by model version (of the collection
        `collection` only, when given)."""
        sql, params = _in_collection("SELECT model_version, COUNT(*) FROM searches WHERE 1 = 1",
                                     [], collection)  # fmt: skip
        searches_by_version = {
            int(version): int(n)
            for version, n in self._execute(
                sql + " GROUP BY model_version", tuple(params), fetch=True
            )
        }
        by_version: dict[int, dict[str, int]] = {}
        by_label = dict.fromkeys(LABELS, 0)
        sql, params = _in_collection(
            "SELECT model_version, label, COUNT(*) FROM feedback WHERE 1 = 1", [], collection
        )
        for version, label, n in self._execute(
            sql + " GROUP BY model_version, label", tuple(params), fetch=True
        ):
            by_version.setdefault(int(version), dict.fromkeys(LABELS, 0))[label] = int(n)
            by_label[label] = by_label.get(label, 0) + int(n)
        sql, params = _in_collection("SELECT COUNT(*) FROM feedback WHERE free_text = ?", [True],
                                     collection)  # fmt: skip
        free_text = self._execute(sql, tuple(params), fetch=True)[0][0]
        return FeedbackStats(
            free_text=int(free_text),
            searches=sum(searches_by_version.values()),
            feedback=sum(by_label.values()),
            by_label=by_label,
            feedback_by_model_version=dict(sorted(by_version.items())),
            searches_by_model_version=dict(sorted(searches_by_version.items())),
        )

    def daily_counts(
        self, since: str, *, collection: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Feedback per UTC day (`YYYY-MM-DD`) and label, from `since` on (days without any
        are absent); only collection `collection` (its physical `NAME__vN`s) when given."""
        sql = (
            "SELECT substr(created_at, 1, 10), label, COUNT(*) FROM feedback WHERE created_at >= ?"
        )
        params: list[Any] = [since]
        sql, params = _in_collection(sql, params, collection)
        rows = self._execute(sql + " GROUP BY 1, 2", tuple(params), fetch=True)
        days: dict[str, dict[str, int]] = {}
        for day, label, n in rows:
            days.setdefault(str(day), dict.fromkeys(LABELS, 0))[str(label)] = int(n)
        return days

    def label_counts(self, *, collection: str | None = None) -> dict[str, int]:
        """Feedback per label, ever (every label present, 0 when none)."""
        sql, params = _in_collection("SELECT label, COUNT(*) FROM feedback WHERE 1 = 1", [],
                                     collection)  # fmt: skip
        counts = dict.fromkeys(LABELS, 0)
        for label, n in self._execute(sql + " GROUP BY label", tuple(params), fetch=True):
            counts[str(label)] = int(n)
        return counts

    def recent_feedback(
        self, limit: int = 20, *, collection: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` judgements (`EXPORT_FIELDS`), newest first."""
        columns = ", ".join("id" if f == "feedback_id" else f for f in EXPORT_FIELDS)
        sql, params = _in_collection(f"SELECT {columns} FROM feedback WHERE 1 = 1", [],
                                     collection)  # fmt: skip
        rows = self._execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit), fetch=True)
        records = []
        for row in rows:
            record = dict(zip(EXPORT_FIELDS, row, strict=True))
            record["free_text"] = bool(record["free_text"])
            records.append(record)
        return records

    def count_searches(self, since: str | None = None, *, collection: str | None = None) -> int:
        """Searches logged (from `since` on, when given)."""
        sql = "SELECT COUNT(*) FROM searches WHERE created_at >= ?"
        sql, params = _in_collection(sql, [since or ""], collection)
        return int(self._execute(sql, tuple(params), fetch=True)[0][0])

    def close(self) -> None:
        """Close every pooled connection."""
        self._relaxed_pool.close()
        self._pool.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---
    @contextmanager
    def _cursor(self, *, durable: bool = True) -> Iterator[Any]:
        pool = self._pool if durable else self._relaxed_pool
        with pool.connection() as conn:
            cur = conn.cursor()
            try:
                yield cur
            except self._errors as exc:
                raise FeedbackLogError(f"feedback log {self.location}: {_one_line(exc)}") from exc
            finally:
                cur.close()

    def _execute(
        self, sql: str, params: tuple[Any, ...], *, fetch: bool = False, durable: bool = True
    ) -> list[tuple[Any, ...]]:
        if self._param != "?":
            sql = sql.replace("?", self._param)
        with self._cursor(durable=durable) as cur:
            cur.execute(sql, params)
            return [tuple(row) for row in cur.fetchall()] if fetch else []


def feedback_log_url(settings: Settings) -> str:
    """The log's URL: `feedback.database_url`, else SQLite at `data_dir/feedback.db`."""
    if settings.feedback.database_url:
        return settings.feedback.database_url
    return f"sqlite:///{settings.data_dir / FEEDBACK_DB}"


def open_feedback_log(settings: Settings, *, create: bool = True) -> FeedbackLog:
    """Open the log the settings name (see `feedback_log_url`)."""
    return FeedbackLog.open(feedback_log_url(settings), create=create)


def _in_collection(sql: str, params: list[Any], collection: str | None) -> tuple[str, list[Any]]:
    """`sql` (ending in a WHERE clause) narrowed to the physical collections `NAME__vN` of
    `collection`; unchanged when it is None. substr, not LIKE: `_` is a LIKE wildcard."""
    if collection is None:
        return sql, params
    prefix = f"{collection}__v"
    return sql + " AND substr(collection, 1, ?) = ?", [*params, len(prefix), prefix]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
