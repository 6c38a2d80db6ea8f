"""Load documents from files and folders: txt, md, html, pdf and jsonl (BEIR corpus records too).

A file or record that cannot be loaded becomes a `Skipped` value with one human-readable reason;
only a path that does not exist raises. Files are read one at a time and jsonl files line by line,
so a corpus of any size streams through in bounded memory.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ragctl.core.records import Document
from ragctl.ingest.errors import IngestError

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl")
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

_MIB = 1024 * 1024
_BINARY_PROBE_BYTES = 8 * 1024
_MAX_REPLACEMENT_RATIO = 0.01
_EMPTY = "empty after extracting text"
_MD_TITLE = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SPACES = re.compile(r"\s+")
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HTML_DROP = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object"}
)
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_HTML_CELLS = frozenset({"td", "th"})


@dataclass(frozen=True)
class Skipped:
    """A file or record that was not loaded.

    Attributes:
        source: The file (relative path as in `Document.source`, without a line number).
        reason: One human-readable line, e.g. "binary file (NUL bytes in the first 8 KiB)".
    """

    source: str
    reason: str


def iter_documents(
    paths: Sequence[Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    base_dir: Path | None = None,
) -> Iterator[Document | Skipped]:
    """Yield the documents in files and folders, and a `Skipped` for each one that fails.

    Folders are walked recursively in sorted order; hidden entries (names starting with ".") and
    files with unsupported extensions are ignored there. `include`/`exclude` are fnmatch globs
    matched against the path relative to the folder given (`"*.md"`, `"drafts/**"`); a pattern
    without "/" also matches the bare file name. Files named explicitly are always loaded (an
    unsupported extension then yields a `Skipped`). A jsonl file yields one document per record;
    for jsonl, `max_file_bytes` limits each line rather than the whole file.

    Args:
        paths: Files and folders to load.
        include: If given, only files matching one of these globs are loaded from folders.
        exclude: Files matching one of these globs are not loaded from folders.
        max_file_bytes: Larger files are skipped without being read.
        base_dir: Document ids are paths relative to this folder (default: the current one).

    Raises:
        IngestError: A path does not exist, or `max_file_bytes` is not positive (raised by
            the call itself, before anything is loaded).
    """
    if max_file_bytes <= 0:
        raise IngestError(f"max_file_bytes must be > 0, got {max_file_bytes}")
    base = Path(os.path.abspath(base_dir if base_dir is not None else Path.cwd()))
    roots = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(p) for p, root in zip(paths, roots, strict=True) if not root.exists()]
    if missing:
        raise IngestError(f"path does not exist: {', '.join(missing)}")
    return _iter_files(roots, include, exclude, max_file_bytes, base)


def _iter_files(
    roots: list[Path],
    include: Sequence[str],
    exclude: Sequence[str],
    max_file_bytes: int,
    base: Path,
) -> Iterator[Document | Skipped]:
    seen: set[Path] = set()
    for root in roots:
        files = _walk(root, include, exclude) if root.is_dir() else [root]
        for path in files:
            if path in seen:
                continue
            seen.add(path)
            yield from _load_file(path, _display_path(path, base), max_file_bytes)


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str]) -> list[Path]:
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_log_walk_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            rel = path.relative_to(root)
            if include and not _matches(rel.as_posix(), include):
                continue
            if exclude and _matches(rel.as_posix(), exclude):
                continue
            found.append((rel.parts, path))
    return [path for _, path in sorted(found)]


def _log_walk_error(exc: OSError) -> None:
    logger.warning("cannot list folder %s: %s", exc.filename, exc.strerror)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        for pat in candidates:
            if fnmatch.fnmatchcase(rel, pat) or ("/" not in pat and fnmatch.fnmatchcase(name, pat)):
                return True
    return False


def _display_path(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _unreadable(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return f"unreadable: [Errno {exc.errno}] {exc.strerror}"
    return f"unreadable: {exc}"


def _too_large(size: int, limit: int) -> str:
    return f"larger than {_human_size(limit)} limit ({_human_size(size)})"


def _human_size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < _MIB:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / _MIB:.1f} MiB"


def _load_file(path: Path, display: str, max_file_bytes: int) -> Iterator[Document | Skipped]:
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        allowed = ", ".join(SUPPORTED_EXTENSIONS)
        yield Skipped(display, f"unsupported extension '{ext}' (allowed: {allowed})")
        return
    if ext == ".jsonl":
        yield from _load_jsonl(path, display, max_file_bytes)
        return
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            yield Skipped(display, _too_large(size, max_file_bytes))
            return
        data = path.read_bytes()
    except OSError as exc:
        yield Skipped(display, _unreadable(exc))
        return
    if ext == ".pdf":
        yield _load_pdf(data, display)
        return
    try:
        text = _decode(data, display)
    except _NotText as exc:
        yield Skipped(display, str(exc))
        return
    if ext in (".html", ".htm"):
        body, title = _html_text(text)
        meta: dict[str, Any] = {"path": display, "format": "html"}
        if title:
            meta["title"] = title
        yield _document(display, body, meta)
    else:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        meta = {"path": display, "format": ext[1:]}
        title = _markdown_title(text) if ext == ".md" else None
        if title:
            meta["title"] = title
        yield _document(display, text, meta)


def _document(display: str, text: str, metadata: dict[str, Any]) -> Document | Skipped:
    if not text.strip():
        return Skipped(display, _EMPTY)
    return Document(doc_id=display, text=text, source=display, metadata=metadata)


class _NotText(Exception):
    """A file's bytes are not text; the message is the reason."""


def _decode(data: bytes, display: str) -> str:
    """UTF-8 text of a file (a few undecodable bytes are replaced); raises _NotText."""
    if b"\x00" in data[:_BINARY_PROBE_BYTES]:
        raise _NotText("binary file (NUL bytes in the first 8 KiB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="replace")
    ratio = text.count("\ufffd") / max(len(text), 1)
    if ratio >= _MAX_REPLACEMENT_RATIO:
        raise _NotText(f"not UTF-8 text ({ratio:.0%} of characters undecodable)")
    logger.warning("%s: replaced undecodable bytes with U+FFFD", display)
    return text


def _markdown_title(text: str) -> str | None:
    in_fence = False
    for line in text.split("\n"):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _MD_TITLE.match(line)):
            return match.group(1).strip()
    return None


def _html_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page (blocks separated by blank lines) and its <title>."""
    from selectolax.lexbor import LexborHTMLParser, LexborNode

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    parts: list[str] = []
    stack: list[tuple[LexborNode, bool]] = [(tree.root, False)] if tree.root is not None else []
    while stack:
        node, closing = stack.pop()
        tag = node.tag or ""
        if closing:
            parts.append(" " if tag in _HTML_CELLS else "\n\n")
        elif tag == "-text":
            parts.append(_SPACES.sub(" ", node.text_content or ""))
        elif tag.startswith("-") or tag in _HTML_DROP:
            continue  # comments, doctype, invisible elements
        elif tag == "br":
            parts.append("\n")
        elif tag == "pre":
            parts.append(f"\n\n{node.text(deep=True)}\n\n")
        else:
            if tag in _HTML_BLOCKS or tag in _HTML_CELLS:
                parts.append(" " if tag in _HTML_CELLS else "\n\n")
                stack.append((node, True))
            children = []
            child = node.child
            while child is not None:
                children.append(child)
                child = child.next
            stack.extend((c, False) for c in reversed(children))
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text, title or None


def _load_pdf(data: bytes, display: str) -> Document | Skipped:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return Skipped(display, "encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title).strip() if info is not None and info.title else ""
    except Exception as exc:  # pypdf raises many exception types on damaged files
        return Skipped(display, f"broken PDF ({type(exc).__name__}: {exc})")
    meta: dict[str, Any] = {"path": display, "format": "pdf", "pages": len(pages)}
    if title:
        meta["title"] = title
    return _document(display, "\n\n".join(pages), meta)


def _load_jsonl(path: Path, display: str, max_line_bytes: int) -> Iterator[Document | Skipped]:
    seen: dict[str, int] = {}
    try:
        with path.open("rb") as stream:
            for line_no, raw, size in _iter_lines(stream, max_line_bytes):
                if raw is None:
                    yield Skipped(display, f"line {line_no}: {_too_large(size, max_line_bytes)}")
                    continue
                result = _parse_record(raw, line_no, display, seen)
                if result is not None:
                    yield result
    except OSError as exc:
        yield Skipped(display, _unreadable(exc))


def _iter_lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line, size) triples; the line is None when longer than `limit` bytes."""
    line_no = 0
    while line := stream.readline(limit + 1):
        line_no += 1
        size = len(line)
        if size <= limit or line.endswith(b"\n"):
            yield line_no, line, size
            continue
        while not line.endswith(b"\n") and (line := stream.readline(_MIB)):
            size += len(line)
        yield line_no, None, size


def _parse_record(
    raw: bytes, line_no: int, display: str, seen: dict[str, int]
) -> Document | Skipped | None:
    def skip(reason: str) -> Skipped:
        return Skipped(display, f"line {line_no}: {reason}")

    try:
        line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return skip(f"not UTF-8 ({exc.reason} at byte {exc.start})")
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return skip(f"invalid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(record, dict):
        return skip(f"not a JSON object (got {type(record).__name__})")
    id_key = "id" if record.get("id") is not None else "_id"
    raw_id = record.get(id_key)
    if raw_id is None:
        return skip("missing field 'id' (or '_id')")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return skip(
            f"field '{id_key}' must be a string or an integer (got {type(raw_id).__name__})"
        )
    doc_id = str(raw_id)
    if not doc_id.strip():
        return skip(f"empty field '{id_key}'")
    text = record.get("text")
    if text is None:
        return skip("missing field 'text'")
    if not isinstance(text, str):
        return skip(f"field 'text' is not a string (got {type(text).__name__})")
    title = record.get("title")
    if isinstance(title, str) and title.strip():
        text = f"{title}\n{text}"
    if not text.strip():
        return skip("empty field 'text'")
    if doc_id in seen:
        return skip(f"duplicate id '{doc_id}' (first at line {seen[doc_id]})")
    seen[doc_id] = line_no
    metadata = {k: v for k, v in record.items() if k not in ("id", "_id", "text")}
    return Document(doc_id=doc_id, text=text, source=f"{display}:{line_no}", metadata=metadata)
