"""Load documents from files and folders: txt, md, html, pdf and jsonl (BEIR corpus records too).

A file or record that cannot be loaded becomes a `Skipped` value with one human-readable reason;
only a path that does not exist raises. Files are read one at a time and jsonl files line by line,
so a corpus of any size streams through in bounded memory. Only regular files are opened, and
symbolic links in folders are not followed unless asked (`iter_documents`), so a folder someone
else controls cannot make ingest hang, read a device or index a file from elsewhere.
"""

from __future__ import annotations

import codecs
import fnmatch
import io
import json
import logging
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from ragctl.core.limits import MAX_DOC_ID_CHARS, check_doc_id, check_metadata_value, check_text
from ragctl.core.records import Document
from ragctl.ingest.errors import IngestError

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl")
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

_MIB = 1024 * 1024
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
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
    follow_symlinks: bool = False,
) -> Iterator[Document | Skipped]:
    """Yield the documents in files and folders, and a `Skipped` for each one that fails.

    Folders are walked recursively in sorted order; hidden entries (names starting with ".") and
    files with unsupported extensions are ignored there. `include`/`exclude` are fnmatch globs
    matched against the path relative to the folder given (`"*.md"`, `"drafts/**"`); a pattern
    without "/" also matches the bare file name. Files named explicitly are always loaded (an
    unsupported extension then yields a `Skipped`). A jsonl file yields one document per record;
    for jsonl, `max_file_bytes` limits each line rather than the whole file.

    Safe on folders you do not control: only regular files are opened (a FIFO, socket or device
    is skipped without being opened, and a file is opened non-blocking and checked again, so a
    swap cannot make a read hang); symbolic links inside folders are skipped unless
    `follow_symlinks`, and even then only followed while they stay inside the folders given;
    sizes are checked before reading and reads are bounded.

    Args:
        paths: Files and folders to load.
        include: If given, only files matching one of these globs are loaded from folders.
        exclude: Files matching one of these globs are not loaded from folders.
        max_file_bytes: Larger files are skipped without being read.
        base_dir: Document ids are paths relative to this folder (default: the current one).
        follow_symlinks: Follow symbolic links met in folders (to files and folders inside the
            given folders only). Paths named explicitly are always followed.

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
    walk = _Walk(roots, include, exclude, follow_symlinks)
    return _iter_files(walk, max_file_bytes, base)


@dataclass(frozen=True)
class _Candidate:
    """A file to load; `follow` says whether a symbolic link at `path` may be followed."""

    path: Path
    follow: bool


def _iter_files(walk: _Walk, max_file_bytes: int, base: Path) -> Iterator[Document | Skipped]:
    seen: set[Path] = set()
    for root in walk.roots:
        entries = walk.folder(root) if root.is_dir() else [_Candidate(root, follow=True)]
        for entry in entries:
            if isinstance(entry, Skipped):
                # A link met twice (through a followed folder link) is reported once.
                where = Path(entry.source)
                key = Path(os.path.realpath(where.parent)) / where.name
                if key not in seen:
                    seen.add(key)
                    yield Skipped(_display_path(where, base), entry.reason)
                continue
            key = Path(os.path.realpath(entry.path))
            if key in seen:
                continue
            seen.add(key)
            display = _display_path(entry.path, base)
            if len(display) > MAX_DOC_ID_CHARS:
                yield Skipped(
                    display[:80] + "...",
                    f"path has {len(display)} characters; document ids are limited to "
                    f"{MAX_DOC_ID_CHARS}",
                )
                continue
            yield from _load_file(entry, display, max_file_bytes)


class _Walk:
    """Sorted recursive listing of folders, deciding what happens to links and special files."""

    def __init__(
        self,
        roots: list[Path],
        include: Sequence[str],
        exclude: Sequence[str],
        follow_symlinks: bool,
    ) -> None:
        self.roots = roots
        self.include = include
        self.exclude = exclude
        self.follow_symlinks = follow_symlinks
        # Followed links must resolve inside one of these (the given folders, links resolved).
        self._real_roots = [os.path.realpath(r) for r in roots if r.is_dir()]

    def folder(self, root: Path) -> list[_Candidate | Skipped]:
        found: list[tuple[tuple[str, ...], _Candidate | Skipped]] = []
        self._scan(root, root, {os.path.realpath(root)}, found)
        return [entry for _, entry in sorted(found, key=lambda item: item[0])]

    def _scan(
        self,
        root: Path,
        folder: Path,
        visiting: set[str],
        found: list[tuple[tuple[str, ...], _Candidate | Skipped]],
    ) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            parts = folder.relative_to(root).parts
            found.append((parts, Skipped(str(folder), f"cannot list folder: {_os_reason(exc)}")))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            rel = path.relative_to(root)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=is_link and self.follow_symlinks)
            except OSError as exc:
                found.append((rel.parts, Skipped(str(path), _unreadable(exc))))
                continue
            if is_link:
                self._link(root, path, rel, visiting, found)
            elif is_dir:
                self._scan(root, path, visiting, found)
            elif self._wanted(rel):
                found.append((rel.parts, _Candidate(path, follow=False)))

    def _link(
        self,
        root: Path,
        path: Path,
        rel: Path,
        visiting: set[str],
        found: list[tuple[tuple[str, ...], _Candidate | Skipped]],
    ) -> None:
        target = os.path.realpath(path)
        target_is_dir = os.path.isdir(target)
        if not target_is_dir and not self._wanted(rel):
            return  # a link that would not be loaded anyway, like any unsupported file
        if not self.follow_symlinks:
            kind = "folder" if target_is_dir else "file"
            found.append(
                (rel.parts, Skipped(str(path), f"symbolic link to a {kind}, not followed "
                                               "(--follow-symlinks follows links that stay "
                                               "inside the given folders)"))
            )  # fmt: skip
            return
        if not any(_inside(target, real_root) for real_root in self._real_roots):
            found.append(
                (rel.parts, Skipped(str(path), "symbolic link to outside the given folders, "
                                               "not followed"))
            )  # fmt: skip
            return
        if not target_is_dir:
            found.append((rel.parts, _Candidate(path, follow=True)))
        elif target in visiting:
            found.append((rel.parts, Skipped(str(path), "symbolic link loop, not followed")))
        else:
            self._scan(root, path, visiting | {target}, found)

    def _wanted(self, rel: Path) -> bool:
        if rel.suffix.lower() not in SUPPORTED_EXTENSIONS:
            return False
        if self.include and not _matches(rel.as_posix(), self.include):
            return False
        return not (self.exclude and _matches(rel.as_posix(), self.exclude))


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


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


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc)


def _unreadable(exc: OSError) -> str:
    return f"unreadable: {_os_reason(exc)}"


def _too_large(size: int, limit: int) -> str:
    return f"larger than {_human_size(limit)} limit ({_human_size(size)})"


def _human_size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < _MIB:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / _MIB:.1f} MiB"


class _NotRegular(Exception):
    """The path is not a regular file; the message names what it is."""


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def open_regular(path: Path, *, follow: bool) -> tuple[BinaryIO, int]:
    """Open a regular file for reading without ever blocking; returns (stream, size in bytes).

    The path is checked with stat first, so a FIFO or device is never opened; then it is opened
    with O_NONBLOCK (and O_NOFOLLOW unless `follow`) and checked again with fstat on the open
    descriptor, so a file swapped for a FIFO in between cannot make a read hang.

    Raises:
        _NotRegular: Not a regular file (the message says what it is).
        OSError: It cannot be opened (missing, permission, a link where none is followed).
    """
    mode = os.stat(path, follow_symlinks=follow).st_mode
    if not stat.S_ISREG(mode):
        raise _NotRegular(_kind(mode))
    flags = os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | (0 if follow else _O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular(_kind(info.st_mode))
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _load_file(
    entry: _Candidate, display: str, max_file_bytes: int
) -> Iterator[Document | Skipped]:
    path = entry.path
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        allowed = ", ".join(SUPPORTED_EXTENSIONS)
        yield Skipped(display, f"unsupported extension '{ext}' (allowed: {allowed})")
        return
    try:
        stream, size = open_regular(path, follow=entry.follow)
    except _NotRegular as exc:
        yield Skipped(display, f"not a regular file ({exc})")
        return
    except OSError as exc:
        yield Skipped(display, _unreadable(exc))
        return
    with stream:
        if ext == ".jsonl":
            yield from _load_jsonl(stream, display, max_file_bytes)
            return
        if size > max_file_bytes:
            yield Skipped(display, _too_large(size, max_file_bytes))
            return
        try:
            data = stream.read(max_file_bytes + 1)  # bounded: the file may grow meanwhile
        except OSError as exc:
            yield Skipped(display, _unreadable(exc))
            return
    if len(data) > max_file_bytes:
        yield Skipped(display, _too_large(len(data), max_file_bytes))
        return
    if ext == ".pdf":
        yield _load_pdf(data, display)
        return
    try:
        text, encoding = decode_text(data, display)
    except _NotText as exc:
        yield Skipped(display, str(exc))
        return
    if encoding != "utf-8":
        logger.info("%s: decoded as %s", display, encoding)
    if ext in (".html", ".htm"):
        body, title = _html_text(text)
        meta: dict[str, Any] = {"path": display, "format": "html"}
        if title:
            meta["title"] = title
    else:
        body = text.replace("\r\n", "\n").replace("\r", "\n")
        meta = {"path": display, "format": ext[1:]}
        title = _markdown_title(body) if ext == ".md" else None
        if title:
            meta["title"] = title
    if encoding != "utf-8":
        meta["encoding"] = encoding
    yield _document(display, body, meta)


def _document(display: str, text: str, metadata: dict[str, Any]) -> Document | Skipped:
    if not text.strip():
        return Skipped(display, _EMPTY)
    return Document(doc_id=display, text=text, source=display, metadata=metadata)


class _NotText(Exception):
    """A file's bytes are not text; the message is the reason."""


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WIDE = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")
# Among equally plausible 8-bit encodings, the usual Western ones first (charset-normalizer
# otherwise breaks ties alphabetically, which reads Latin-1 French as cp1250).
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")
_VALID_NON_ASCII = re.compile("[^\x00-\x7f\ufffd]")


def decode_text(data: bytes, name: str = "input") -> tuple[str, str]:
    """The text of a file and the encoding it was read with; raises `_NotText`.

    A byte-order mark decides first (UTF-8, UTF-16, UTF-32); then strict UTF-8; UTF-8 with a
    few damaged bytes (under 1%, next to valid non-ASCII characters) is kept with U+FFFD in
    their place; anything else is detected with charset-normalizer (Latin-1, cp1252, Shift-JIS,
    UTF-16 without a mark, ...). NUL bytes with no wide encoding that fits mean binary.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec.replace("-sig", "")
            except UnicodeDecodeError as exc:
                reason = f"not {codec} text despite its byte-order mark ({exc.reason})"
                raise _NotText(reason) from None
    has_nul = b"\x00" in data[:_BINARY_PROBE_BYTES]
    if not has_nul:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
        text = data.decode("utf-8", errors="replace")
        ratio = text.count("\ufffd") / max(len(text), 1)
        if ratio < _MAX_REPLACEMENT_RATIO and _VALID_NON_ASCII.search(text):
            logger.warning("%s: replaced undecodable bytes with U+FFFD", name)
            return text, "utf-8"
    detected = _detect(data, wide_only=has_nul)
    if detected is None:
        if has_nul:
            raise _NotText("binary file (NUL bytes in the first 8 KiB)")
        raise _NotText("not text (no known encoding fits: binary, or damaged)")
    return detected


def _detect(data: bytes, *, wide_only: bool) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    if wide_only:
        matches = from_bytes(data, cp_isolation=list(_WIDE))
    else:
        matches = from_bytes(data, cp_exclusion=list(_WIDE))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if m.chaos == best.chaos and m.coherence == best.coherence]
    chosen = next((m for name in _PREFERRED for m in tied if m.encoding == name), best)
    text = str(chosen)
    if "\x00" in text:
        return None
    return text, chosen.encoding


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


def _load_jsonl(
    stream: IO[bytes], display: str, max_line_bytes: int
) -> Iterator[Document | Skipped]:
    seen: dict[str, int] = {}
    try:
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


class _BadNumber(ValueError):
    """A JSON number the store cannot hold (NaN, an infinity, an overflowing float)."""


def _refuse_constant(name: str) -> float:
    raise _BadNumber(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


def _loads(line: str) -> Any:
    """Strict JSON: no NaN or Infinity, no float overflow (Python's json accepts all three)."""
    return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)


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
        record = _loads(line)
    except json.JSONDecodeError as exc:
        return skip(f"invalid JSON ({exc.msg} at column {exc.colno})")
    except _BadNumber as exc:
        return skip(f"invalid JSON ({exc})")
    except RecursionError:
        return skip("invalid JSON (nested too deeply to read)")
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return skip(f"invalid JSON ({_first_line(exc)})")
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
    try:
        check_doc_id(doc_id)
    except ValueError as exc:
        return skip(f"field '{id_key}': {exc}")
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
    try:
        check_text(text, "field 'text'")
    except ValueError as exc:
        return skip(str(exc))
    metadata: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("id", "_id", "text"):
            continue
        try:
            metadata[check_text(key, "a field name")] = check_metadata_value(value, 1)
        except ValueError as exc:
            return skip(f"field {key!r}: {exc}")
    if doc_id in seen:
        return skip(f"duplicate id '{doc_id}' (first at line {seen[doc_id]})")
    seen[doc_id] = line_no
    return Document(doc_id=doc_id, text=text, source=f"{display}:{line_no}", metadata=metadata)


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:200]
