"""Tests for ingest.loaders: every format, every skip reason, folder walks and globs."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from ragctl.core.records import Document
from ragctl.ingest.errors import IngestError
from ragctl.ingest.loaders import SUPPORTED_EXTENSIONS, Skipped, iter_documents


def load(*paths: Path, base: Path, **kwargs: object) -> list[Document | Skipped]:
    return list(iter_documents(list(paths), base_dir=base, **kwargs))  # type: ignore[arg-type]


def minimal_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, with a correct xref table."""
    n = len(pages)
    font = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects: list[bytes | str] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
    ]
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>"
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if title:
        objects.append(f"<< /Title ({title}) >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        body_bytes = body.encode() if isinstance(body, str) else body
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body_bytes))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, info))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt(user_password, "owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_minimal_pdf_helper_is_valid_for_pypdf_strict_mode() -> None:
    reader = PdfReader(io.BytesIO(minimal_pdf(["Hello"], title="T")), strict=True)
    assert [page.extract_text() for page in reader.pages] == ["Hello"]


def test_iter_documents_txt_uses_relative_path_as_id(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("Hello\r\nworld\n", encoding="utf-8")
    assert load(tmp_path / "notes" / "a.txt", base=tmp_path) == [
        Document(
            doc_id="notes/a.txt",
            text="Hello\nworld\n",
            source="notes/a.txt",
            metadata={"path": "notes/a.txt", "format": "txt"},
        )
    ]


def test_iter_documents_outside_base_dir_uses_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x", encoding="utf-8")
    (doc,) = load(path, base=tmp_path / "elsewhere")
    assert isinstance(doc, Document)
    assert doc.doc_id == doc.source == path.as_posix()


def test_iter_documents_default_base_dir_is_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (doc,) = list(iter_documents([Path("a.txt")]))
    assert isinstance(doc, Document)
    assert doc.doc_id == "a.txt"


def test_iter_documents_markdown_keeps_text_and_takes_first_h1_as_title(tmp_path: Path) -> None:
    text = "```sh\n# not a title\n```\nIntro\n\n## Sub\n#  Real Title  #\n\n# Second\nBody *em*\n"
    (tmp_path / "a.md").write_text(text, encoding="utf-8")
    (tmp_path / "b.md").write_text("No heading here\n", encoding="utf-8")
    docs = load(tmp_path / "a.md", tmp_path / "b.md", base=tmp_path)
    assert docs == [
        Document("a.md", text, "a.md", {"path": "a.md", "format": "md", "title": "Real Title"}),
        Document("b.md", "No heading here\n", "b.md", {"path": "b.md", "format": "md"}),
    ]


def test_iter_documents_html_keeps_visible_text_only(tmp_path: Path) -> None:
    html = """<!DOCTYPE html>
<html><head><title> The   Page </title><meta charset="utf-8">
<style>p { color: red }</style><script>var x = "<p>hidden</p>";</script></head>
<body>
  <!-- a comment -->
  <h1>Main   heading</h1>
  <p>First
     paragraph with <b>bold</b>&nbsp;and &amp; &lt;entities&gt;.</p>
  <div>Line one<br>Line two</div>
  <noscript>enable js</noscript><template><p>tpl</p></template>
  <svg><text>vector</text></svg>
  <ul><li>one</li><li>two</li></ul>
  <table><tr><td>a</td><td>b</td></tr></table>
  <script>alert(1)</script>
</body></html>"""
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    (doc,) = load(tmp_path / "page.html", base=tmp_path)
    assert doc == Document(
        "page.html",
        "Main heading\n\nFirst paragraph with bold and & <entities>.\n\n"
        "Line one\nLine two\n\none\n\ntwo\n\na b",
        "page.html",
        {"path": "page.html", "format": "html", "title": "The Page"},
    )


def test_iter_documents_htm_without_title_has_no_title(tmp_path: Path) -> None:
    (tmp_path / "x.htm").write_text("<p>Just text</p>", encoding="utf-8")
    (doc,) = load(tmp_path / "x.htm", base=tmp_path)
    assert doc == Document("x.htm", "Just text", "x.htm", {"path": "x.htm", "format": "html"})


def test_iter_documents_pdf_joins_pages(tmp_path: Path) -> None:
    (tmp_path / "doc.pdf").write_bytes(minimal_pdf(["Hello PDF world", "Page two"], title="A PDF"))
    (doc,) = load(tmp_path / "doc.pdf", base=tmp_path)
    assert doc == Document(
        "doc.pdf",
        "Hello PDF world\n\nPage two",
        "doc.pdf",
        {"path": "doc.pdf", "format": "pdf", "pages": 2, "title": "A PDF"},
    )


def test_iter_documents_pdf_encrypted_with_password_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "locked.pdf").write_bytes(encrypted_pdf("secret"))
    assert load(tmp_path / "locked.pdf", base=tmp_path) == [
        Skipped("locked.pdf", "encrypted PDF (needs a password)")
    ]


def test_iter_documents_pdf_encrypted_with_empty_password_opens(tmp_path: Path) -> None:
    # It opens; its only page is blank, so it is then skipped as empty (not as encrypted).
    (tmp_path / "open.pdf").write_bytes(encrypted_pdf(""))
    assert load(tmp_path / "open.pdf", base=tmp_path) == [
        Skipped("open.pdf", "empty after extracting text")
    ]


def test_iter_documents_broken_pdf_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    (skipped,) = load(tmp_path / "broken.pdf", base=tmp_path)
    assert isinstance(skipped, Skipped)
    assert skipped.source == "broken.pdf"
    assert skipped.reason.startswith("broken PDF (")


def test_iter_documents_binary_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "blob.txt").write_bytes(b"abc\x00def" * 10)
    assert load(tmp_path / "blob.txt", base=tmp_path) == [
        Skipped("blob.txt", "binary file (NUL bytes in the first 8 KiB)")
    ]


def test_iter_documents_latin1_and_cp1252_files_are_decoded(tmp_path: Path) -> None:
    text = "Crème brûlée, naïve façade: à la carte. Größe und Straße, señor. " * 3
    (tmp_path / "latin.txt").write_bytes(text.encode("latin-1"))
    (tmp_path / "quotes.md").write_bytes("# “Menu” — €5\n\nCafé au lait".encode("cp1252"))
    docs = load(tmp_path / "latin.txt", tmp_path / "quotes.md", base=tmp_path)
    assert [d.text for d in docs if isinstance(d, Document)] == [
        text,
        "# “Menu” — €5\n\nCafé au lait",
    ]
    assert docs[0].metadata["encoding"] == "cp1252" and docs[1].metadata["title"] == "“Menu” — €5"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_iter_documents_utf16_and_utf32_files_are_decoded(tmp_path: Path, codec: str) -> None:
    text = "Steam the milk to 60 °C. Le café est prêt. 日本語も大丈夫。\n" * 5
    (tmp_path / "wide.txt").write_bytes(text.encode(codec))
    (doc,) = load(tmp_path / "wide.txt", base=tmp_path)
    assert isinstance(doc, Document), doc
    assert doc.text == text


def test_iter_documents_undecodable_bytes_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "noise.txt").write_bytes(bytes(range(128, 256)) * 40)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    (tmp_path / "png.md").write_bytes(png)
    assert load(tmp_path / "noise.txt", tmp_path / "png.md", base=tmp_path) == [
        Skipped("noise.txt", "not text (no known encoding fits: binary, or damaged)"),
        Skipped("png.md", "binary file (NUL bytes in the first 8 KiB)"),
    ]


def test_iter_documents_few_invalid_bytes_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "mostly.txt").write_bytes("é".encode() * 100 + b"a" * 200 + b"\xff" + b"b" * 10)
    (doc,) = load(tmp_path / "mostly.txt", base=tmp_path)
    assert isinstance(doc, Document)
    assert doc.text == "é" * 100 + "a" * 200 + "\ufffd" + "b" * 10
    assert "encoding" not in doc.metadata


def test_iter_documents_utf8_bom_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes("\ufeffÜnïcödé".encode())
    (doc,) = load(tmp_path / "bom.txt", base=tmp_path)
    assert isinstance(doc, Document)
    assert doc.text == "Ünïcödé"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.txt", b""),
        ("blank.md", b"  \n\t\n"),
        ("tags.html", b"<html><head><title>Only a title</title></head><body> </body></html>"),
        ("blank.pdf", minimal_pdf([""])),
    ],
)
def test_iter_documents_empty_text_is_skipped(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    assert load(tmp_path / name, base=tmp_path) == [Skipped(name, "empty after extracting text")]


def test_iter_documents_oversized_file_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big.txt").write_bytes(b"x" * 3000)
    (tmp_path / "small.txt").write_bytes(b"y" * 2048)

    def no_read(self: Path) -> bytes:
        raise AssertionError(f"{self} was read")

    docs = load(tmp_path / "big.txt", base=tmp_path, max_file_bytes=2048)
    assert docs == [Skipped("big.txt", "larger than 2.0 KiB limit (2.9 KiB)")]
    monkeypatch.setattr(Path, "read_bytes", no_read)
    assert load(tmp_path / "big.txt", base=tmp_path, max_file_bytes=100) == [
        Skipped("big.txt", "larger than 100 bytes limit (2.9 KiB)")
    ]
    monkeypatch.undo()
    (doc,) = load(tmp_path / "small.txt", base=tmp_path, max_file_bytes=2048)
    assert isinstance(doc, Document)


def test_iter_documents_max_file_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="max_file_bytes must be > 0, got 0"):
        iter_documents([tmp_path], max_file_bytes=0)


def test_iter_documents_unsupported_explicit_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "Makefile").write_text("all:", encoding="utf-8")
    allowed = ", ".join(SUPPORTED_EXTENSIONS)
    assert load(tmp_path / "image.png", tmp_path / "Makefile", base=tmp_path) == [
        Skipped("image.png", f"unsupported extension '.png' (allowed: {allowed})"),
        Skipped("Makefile", f"unsupported extension '' (allowed: {allowed})"),
    ]
    assert allowed == ".txt, .md, .html, .htm, .pdf, .jsonl"


def test_iter_documents_missing_path_raises_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    missing = tmp_path / "nope"
    with pytest.raises(IngestError, match=f"path does not exist: {missing}"):
        # Raised by the call itself, before anything is loaded, though a.txt comes first.
        iter_documents([tmp_path / "a.txt", missing])


def make_tree(root: Path) -> None:
    files = {
        "b.md": "# B\nbee",
        "a.txt": "aye",
        "sub/c.html": "<p>see</p>",
        "sub/deeper/d.txt": "dee",
        "drafts/e.md": "draft",
        "drafts/more/f.txt": "draft 2",
        ".hidden.txt": "hidden",
        ".git/config.txt": "hidden dir",
        "sub/.cache/g.txt": "hidden nested dir",
        "image.png": "not text",
        "UPPER.TXT": "upper case extension",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def ids(items: list[Document | Skipped]) -> list[str]:
    return [
        item.doc_id if isinstance(item, Document) else f"skipped:{item.source}" for item in items
    ]


def test_iter_documents_folder_walk_is_sorted_and_ignores_hidden(tmp_path: Path) -> None:
    make_tree(tmp_path / "corpus")
    assert ids(load(tmp_path / "corpus", base=tmp_path)) == [
        "corpus/UPPER.TXT",
        "corpus/a.txt",
        "corpus/b.md",
        "corpus/drafts/e.md",
        "corpus/drafts/more/f.txt",
        "corpus/sub/c.html",
        "corpus/sub/deeper/d.txt",
    ]


def test_iter_documents_explicit_hidden_file_is_loaded(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert ids(load(tmp_path / ".hidden.txt", base=tmp_path)) == [".hidden.txt"]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.md"], [], ["b.md", "drafts/e.md"]),
        (["sub/*"], [], ["sub/c.html", "sub/deeper/d.txt"]),
        ([], ["drafts/**"], ["UPPER.TXT", "a.txt", "b.md", "sub/c.html", "sub/deeper/d.txt"]),
        (["*.txt"], ["**/deeper/*"], ["a.txt", "drafts/more/f.txt"]),
        (["d.txt", "a.*"], [], ["a.txt", "sub/deeper/d.txt"]),
        ([], ["*.txt", "*.TXT", "*.html"], ["b.md", "drafts/e.md"]),
    ],
)
def test_iter_documents_include_exclude_globs(
    tmp_path: Path, include: list[str], exclude: list[str], expected: list[str]
) -> None:
    make_tree(tmp_path)
    assert ids(load(tmp_path, base=tmp_path, include=include, exclude=exclude)) == expected


def test_iter_documents_same_file_twice_loads_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    assert ids(load(tmp_path, tmp_path / "a.txt", base=tmp_path)) == ["a.txt"]


def test_iter_documents_broken_symlink_in_folder_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    assert load(tmp_path, base=tmp_path) == [Skipped("dangling.txt", NOT_FOLLOWED.format("file"))]
    assert load(tmp_path, base=tmp_path, follow_symlinks=True) == [
        Skipped("dangling.txt", "unreadable: [Errno 2] No such file or directory")
    ]


def test_iter_documents_read_error_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")

    def denied(path: object, flags: int, *args: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    assert load(tmp_path / "a.txt", base=tmp_path) == [
        Skipped("a.txt", "unreadable: [Errno 13] Permission denied")
    ]


NOT_FOLLOWED = (
    "symbolic link to a {}, not followed (--follow-symlinks follows links that stay inside "
    "the given folders)"
)
OUTSIDE = "symbolic link to outside the given folders, not followed"


def load_within(seconds: float, *paths: Path, **kwargs: object) -> list[Document | Skipped]:
    """`load`, failing (instead of hanging the suite) when it does not finish in time."""
    result: list[list[Document | Skipped]] = []
    worker = threading.Thread(target=lambda: result.append(load(*paths, **kwargs)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"loading {paths} did not finish within {seconds} s"
    return result[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_iter_documents_special_files_are_skipped_without_opening(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "fifo.txt")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "sock.md"))
        (folder / "ok.txt").write_text("fine", encoding="utf-8")
        docs = load_within(30, folder, base=tmp_path)
    assert docs == [
        Skipped("in/fifo.txt", "not a regular file (a FIFO (named pipe))"),
        Document("in/ok.txt", "fine", "in/ok.txt", {"path": "in/ok.txt", "format": "txt"}),
        Skipped("in/sock.md", "not a regular file (a socket)"),
    ]
    # Named explicitly, a FIFO is skipped too (never opened, so nothing blocks).
    assert load_within(30, folder / "fifo.txt", base=tmp_path) == [
        Skipped("in/fifo.txt", "not a regular file (a FIFO (named pipe))")
    ]


REAL_MD_META = {"path": "in/real.md", "format": "md"}


def test_iter_documents_symlinks_are_not_followed_by_default(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.md").write_text("the real one", encoding="utf-8")
    (folder / "alias.md").symlink_to(folder / "real.md")
    (folder / "linked_dir").symlink_to(folder / "sub")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "image.png").symlink_to("/etc/passwd")  # not an input anyway: ignored silently
    docs = load_within(30, folder, base=tmp_path)
    assert docs == [
        Skipped("in/alias.md", NOT_FOLLOWED.format("file")),
        Skipped("in/linked_dir", NOT_FOLLOWED.format("folder")),
        Skipped("in/passwd.txt", NOT_FOLLOWED.format("file")),
        Document("in/real.md", "the real one", "in/real.md", REAL_MD_META),
        Skipped("in/zero.txt", NOT_FOLLOWED.format("file")),
    ]


def test_iter_documents_follow_symlinks_stays_inside_the_given_folders(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "deep.txt").write_text("deep", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("outside", encoding="utf-8")
    (folder / "inner.txt").symlink_to(folder / "sub" / "deep.txt")
    (folder / "linked").symlink_to(folder / "sub")
    (folder / "sub" / "loop").symlink_to(folder)
    (folder / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "etc").symlink_to("/etc")
    docs = load_within(30, folder, base=tmp_path, follow_symlinks=True)
    assert [(d.source, getattr(d, "reason", "loaded")) for d in docs] == [
        ("in/escape.txt", OUTSIDE),
        ("in/etc", OUTSIDE),
        ("in/inner.txt", "loaded"),  # the same file as in/sub/deep.txt, loaded once
        ("in/linked/loop", "symbolic link loop, not followed"),  # also in/sub/loop: once
        ("in/passwd.txt", OUTSIDE),
        ("in/zero.txt", OUTSIDE),
    ]
    # A link named explicitly is followed (the operator chose it), but only to a regular file.
    assert load_within(30, folder / "zero.txt", base=tmp_path) == [
        Skipped("in/zero.txt", "not a regular file (a character device)")
    ]


def test_iter_documents_long_paths_are_skipped_like_long_ids(tmp_path: Path) -> None:
    folder = tmp_path / ("d" * 200) / ("e" * 200)
    folder.mkdir(parents=True)
    (folder / ("f" * 200 + ".txt")).write_text("text", encoding="utf-8")
    (skipped,) = load(tmp_path, base=tmp_path)
    assert isinstance(skipped, Skipped)
    assert skipped.reason == "path has 606 characters; document ids are limited to 512"


def write_jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_iter_documents_jsonl_records_and_bad_lines(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "data.jsonl",
        [
            json.dumps({"id": "r1", "text": "first", "lang": "en", "tags": ["a"]}),
            "",
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"text": "no id"}),
            json.dumps({"id": "r2"}),
            json.dumps({"id": "r3", "text": 42}),
            json.dumps({"id": "", "text": "empty id"}),
            json.dumps({"id": "r4", "text": "   "}),
            json.dumps({"id": 7, "text": "integer id"}),
            json.dumps({"id": "r1", "text": "again"}),
            json.dumps({"id": True, "text": "bool id"}),
            "   ",
            json.dumps({"id": "r5", "text": "last", "title": ""}),
        ],
    )
    assert load(tmp_path / "data.jsonl", base=tmp_path) == [
        Document("r1", "first", "data.jsonl:1", {"lang": "en", "tags": ["a"]}),
        Skipped(
            "data.jsonl",
            "line 3: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        ),
        Skipped("data.jsonl", "line 4: not a JSON object (got list)"),
        Skipped("data.jsonl", "line 5: missing field 'id' (or '_id')"),
        Skipped("data.jsonl", "line 6: missing field 'text'"),
        Skipped("data.jsonl", "line 7: field 'text' is not a string (got int)"),
        Skipped("data.jsonl", "line 8: empty field 'id'"),
        Skipped("data.jsonl", "line 9: empty field 'text'"),
        Document("7", "integer id", "data.jsonl:10", {}),
        Skipped("data.jsonl", "line 11: duplicate id 'r1' (first at line 1)"),
        Skipped("data.jsonl", "line 12: field 'id' must be a string or an integer (got bool)"),
        Document("r5", "last", "data.jsonl:14", {"title": ""}),
    ]


def test_iter_documents_jsonl_beir_corpus_records(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "title": "Aspirin", "text": "Reduces fever.", "year": 1899}),
            json.dumps({"_id": "d2", "title": "", "text": "No title."}),
            json.dumps({"_id": "d3", "title": "Title only", "text": ""}),
        ],
    )
    assert load(tmp_path / "corpus.jsonl", base=tmp_path) == [
        Document(
            "d1", "Aspirin\nReduces fever.", "corpus.jsonl:1", {"title": "Aspirin", "year": 1899}
        ),
        Document("d2", "No title.", "corpus.jsonl:2", {"title": ""}),
        Document("d3", "Title only\n", "corpus.jsonl:3", {"title": "Title only"}),
    ]


def test_iter_documents_jsonl_size_limit_applies_per_line(tmp_path: Path) -> None:
    long_text = "x" * 3000
    write_jsonl(
        tmp_path / "big.jsonl",
        [
            json.dumps({"id": "a", "text": "short"}),
            json.dumps({"id": "b", "text": long_text}),
            json.dumps({"id": "c", "text": "after"}),
        ],
    )
    docs = load(tmp_path / "big.jsonl", base=tmp_path, max_file_bytes=1024)
    assert docs == [
        Document("a", "short", "big.jsonl:1", {}),
        Skipped("big.jsonl", "line 2: larger than 1.0 KiB limit (3.0 KiB)"),
        Document("c", "after", "big.jsonl:3", {}),
    ]


def test_iter_documents_jsonl_is_streamed_lazily(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    write_jsonl(path, [json.dumps({"id": str(i), "text": f"t{i}"}) for i in range(3)])
    items = iter_documents([path], base_dir=tmp_path)
    first = next(items)
    # Lines appended after the first record was read are still seen: the file is read lazily.
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"id": "late", "text": "appended"}) + "\n")
    assert ids([first, *items]) == ["0", "1", "2", "late"]


def test_iter_documents_jsonl_invalid_utf8_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_bytes(
        b'{"id": "a", "text": "\xff"}\n{"id": "b", "text": "ok"}\n'
    )
    assert load(tmp_path / "bad.jsonl", base=tmp_path) == [
        Skipped("bad.jsonl", "line 1: not UTF-8 (invalid start byte at byte 21)"),
        Document("b", "ok", "bad.jsonl:2", {}),
    ]


def test_iter_documents_jsonl_hostile_lines_are_skipped_and_the_rest_loads(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    lines = [
        '{"id": "nan", "text": "t", "score": NaN}',
        '{"id": "inf", "text": "t", "score": -Infinity}',
        '{"id": "overflow", "text": "t", "score": 1e400}',
        '{"id": "deep", "text": "t", "meta": ' + deep + "}",
        deep,
        '{"id": "bigint", "text": "t", "n": ' + str(2**64) + "}",
        '{"id": "digits", "text": "t", "n": ' + "9" * 5000 + "}",
        '{"id": "surrogate", "text": "a\\ud800b"}',
        '{"id": "nested", "text": "t", "m": ' + "[" * 9 + "1" + "]" * 9 + "}",
        json.dumps({"id": "x" * 513, "text": "t"}),
        json.dumps({"id": 1.5, "text": "t"}),
        json.dumps({"id": "ok", "text": "kept", "n": 2**63 - 1, "f": 1.5, "m": [[1]]}),
    ]
    write_jsonl(tmp_path / "bad.jsonl", lines)
    docs = load_within(60, tmp_path / "bad.jsonl", base=tmp_path)
    reasons = [d.reason for d in docs if isinstance(d, Skipped)]
    assert reasons == [
        "line 1: invalid JSON (NaN is not a valid JSON number)",
        "line 2: invalid JSON (-Infinity is not a valid JSON number)",
        "line 3: invalid JSON (number 1e400 is out of range)",
        "line 4: invalid JSON (nested too deeply to read)",
        "line 5: invalid JSON (nested too deeply to read)",
        "line 6: field 'n': integer of 65 bits is outside the 64-bit range",
        "line 7: invalid JSON (Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit)",
        "line 8: field 'text' is not valid Unicode text (position 1)",
        "line 9: field 'm': nested deeper than 8 levels",
        "line 10: field 'id': document id has 513 characters; the limit is 512",
        "line 11: field 'id' must be a string or an integer (got float)",
    ]
    assert docs[-1] == Document(
        "ok", "kept", "bad.jsonl:12", {"n": 2**63 - 1, "f": 1.5, "m": [[1]]}
    )
