"""The console in a real headless Chromium, against a real `ragctl serve` (packaged model).

Ingests a small corpus, opens the console, searches, judges a result "relevant" and sees the
count grow through the API, opens a document, the feedback, models and evaluation pages, at
1280 and 390 px wide; no console errors, and no request leaves the loopback address. A second
collection of the same server is chosen in the console and its pages answer for it. /docs
renders its operations with every non-loopback request aborted. One server and one Chromium
serve the module; each test opens its own browser context.

Needs Debian's `chromium` (`/usr/bin/chromium`; `.ci/run` installs it) and Playwright for
Python; skipped with the reason where either is missing. `playwright install` is never run:
the system browser is launched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RAGCTL_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WRITE, ADMIN = "write-key-console-test-0123", "admin-key-console-test-0123"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
DOCS = {
    "bar/grinder.md": "# Grinder care\n\nThe burrs of the espresso grinder are replaced every "
    "800 kg of coffee. Clean the chute daily with a dry brush.",
    "bar/milk.md": "# Milk\n\nSteam whole milk to 60 degrees Celsius; oat milk stretches best "
    "at 55 degrees.",
    "front/refunds.md": "# Refunds\n\nRefunds over 40 dollars need the PIN of a shift lead.",
    "front/wifi.md": "# Wifi\n\nThe guest wifi password changes every Monday.",
}
# A second collection of the same server, for the console's collection choice.
NOTES = "notes"
NOTE_DOCS = [
    {"id": "deliveries.md", "text": "Deliveries come through the back door on Fridays."},
    {"id": "keys.md", "text": "The spare keys hang in the office behind the calendar."},
]


def _browser_or_skip():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    return sync_playwright


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `ragctl serve` on 127.0.0.1 over an ingested corpus, with write and admin keys."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("console")
    corpus = root / "corpus"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    data_dir = root / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")},
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
        "RAGCTL_RETRIEVER__WRITE_API_KEY": WRITE,
        "RAGCTL_RETRIEVER__ADMIN_API_KEY": ADMIN,
    }
    ragctl = [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir)]
    subprocess.run([*ragctl, "ingest", "."], cwd=corpus, env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = _free_port()
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*ragctl, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise AssertionError((root / "serve.log").read_text())
            try:
                if httpx.get(f"{url}/v1/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("ragctl serve not ready after 180 s")
            time.sleep(0.3)
        admin, write = ({"Authorization": f"Bearer {key}"} for key in (ADMIN, WRITE))
        httpx.post(f"{url}/v1/admin/collections", json={"name": NOTES}, headers=admin,
                   timeout=120).raise_for_status()  # fmt: skip
        httpx.post(f"{url}/v1/documents", json={"documents": NOTE_DOCS, "collection": NOTES},
                   headers=write, timeout=120).raise_for_status()  # fmt: skip
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


class Browser:
    """A fresh context (its own storage) of the shared Chromium that records requests and
    console errors."""

    def __init__(self, chromium, width: int) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.width = width
        self.context = chromium.new_context(viewport={"width": width, "height": 900})
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None,
        )  # fmt: skip
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def outside_requests(self) -> list[str]:
        outside = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.hostname not in LOOPBACK:
                outside.append(url)
        return outside

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module; each test opens its own context in it."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as running:
        launched = running.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=[1280, 390], ids=["1280px", "390px"])
def browser(request, chromium, server):
    opened = Browser(chromium, request.param)
    yield opened
    opened.close()


def _stats(server: str, collection: str | None = None) -> dict:
    params = {"collection": collection} if collection else {}
    return httpx.get(f"{server}/v1/feedback/stats", params=params, timeout=10).json()


def _use_key(page, key: str, role: str) -> None:
    page.fill("#apikey", key)
    page.press("#apikey", "Enter")
    page.wait_for_function(
        "role => document.getElementById('role').textContent.startsWith(role)", arg=role
    )


def test_console_search_judge_document_and_pages(browser, server):
    page = browser.page
    before = _stats(server)["total"]
    page.goto(f"{server}/")
    assert page.url == f"{server}/console/"
    page.wait_for_selector("#q")
    # without a key the judgement buttons are offered but disabled (writes need a key here)
    _use_key(page, WRITE, "write key")
    page.focus("#q")
    page.keyboard.type("How often are the grinder burrs replaced?")
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.wait_for_selector(".hit")
    summary = page.inner_text("#search-summary")
    assert "model v1" in summary and "docs__v1" in summary
    first = page.locator(".hit").first
    assert "bar/grinder.md" in first.inner_text()
    button = first.locator("button.judge-relevant")
    assert button.is_enabled()
    button.click()
    page.wait_for_selector(".hit >> nth=0 >> button.judge-relevant[aria-pressed='true']")
    assert "recorded #" in first.locator(".judged").inner_text()
    after = _stats(server)
    assert after["total"] == before + 1
    newest = after["recent"][0]
    assert newest["label"] == "relevant" and newest["doc_id"] == "bar/grinder.md"

    # open the document from the result
    first.locator("a.doc").click()
    page.wait_for_selector("h1.docid")
    assert page.inner_text("h1.docid") == "bar/grinder.md"
    assert "replaced every 800 kg" in page.inner_text(".chunks")
    assert page.locator("#delete-doc").is_enabled()

    # the documents list
    page.goto(f"{server}/console/#/documents")
    page.wait_for_selector("#doclist table")
    assert page.locator("#doclist tbody tr").count() == len(DOCS)
    page.fill("#prefix", "front/")
    page.click(".filterform button")
    page.wait_for_function("() => document.querySelectorAll('#doclist tbody tr').length === 2")

    # feedback: the judgement is counted
    page.goto(f"{server}/console/#/feedback")
    page.wait_for_selector("#feedback-total")
    assert int(page.inner_text("#feedback-total")) == after["total"]
    assert page.locator("table.recent tbody tr").count() >= 1

    # models: v1 serves; a write key cannot roll back
    page.goto(f"{server}/console/#/models")
    page.wait_for_selector("table.versions")
    assert "v1" in page.inner_text("table.versions") and "serving" in page.inner_text(
        "table.versions"
    )
    assert "docs: v1" in page.inner_text("#serving-profile")
    assert page.locator("#rollback").is_disabled()
    page.wait_for_selector("#retune-state")

    # evaluation: no reports yet, said so
    page.goto(f"{server}/console/#/evaluation")
    page.wait_for_selector("h1:has-text('Evaluation')")
    page.wait_for_selector("text=No eval reports yet")

    # usable at this width: nothing wider than the window
    for name in ("search", "documents", "feedback", "models"):
        page.goto(f"{server}/console/#/{name}")
        page.wait_for_timeout(300)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= browser.width, f"{name} is {overflow}px wide at {browser.width}px"

    assert browser.errors == []
    assert browser.outside_requests() == []
    assert any("/v1/feedback" in url for url in browser.requests)


def test_console_delete_asks_first_and_admin_sees_actions(browser, server):
    page = browser.page
    page.goto(f"{server}/console/#/models/1")
    page.wait_for_selector("#model-detail")
    assert page.locator("#activate").is_disabled()  # no key: no admin
    _use_key(page, ADMIN, "admin key")
    page.wait_for_selector("#activate")
    assert page.locator("#activate").is_disabled()  # v1 serves already
    # a document delete is confirmed in a dialog; Cancel keeps it
    page.goto(f"{server}/console/#/documents/{'front%2Fwifi.md'}")
    page.wait_for_selector("#delete-doc")
    page.click("#delete-doc")
    page.wait_for_selector("dialog[open]")
    page.click("#confirm-cancel")
    page.wait_for_selector("dialog:not([open])", state="attached")
    listing = httpx.get(f"{server}/v1/documents", params={"prefix": "front/wifi"}).json()
    assert listing["total"] == 1
    assert browser.errors == []
    assert browser.outside_requests() == []


def test_console_works_on_the_collection_chosen(chromium, server):
    browser = Browser(chromium, 390)
    try:
        page = browser.page
        before = {name: _stats(server, name)["total"] for name in ("docs", NOTES)}
        page.goto(f"{server}/console/")
        page.wait_for_selector("#collection")
        assert page.input_value("#collection") == "docs"  # the default, until one is chosen
        page.select_option("#collection", NOTES)
        page.wait_for_function(
            "() => document.getElementById('serving').textContent.includes('notes__v1')"
        )
        _use_key(page, WRITE, "write key")
        page.fill("#q", "Which door do deliveries come through?")
        page.press("#q", "Enter")
        page.wait_for_selector(".hit")
        assert "notes__v1" in page.inner_text("#search-summary")
        first = page.locator(".hit").first
        assert "deliveries.md" in first.inner_text()
        first.locator("button.judge-relevant").click()
        page.wait_for_selector(".hit >> nth=0 >> button.judge-relevant[aria-pressed='true']")
        assert _stats(server, NOTES)["total"] == before[NOTES] + 1
        assert _stats(server, "docs")["total"] == before["docs"]

        page.goto(f"{server}/console/#/documents")
        page.wait_for_selector("#doclist table")
        assert page.locator("#doclist tbody tr").count() == len(NOTE_DOCS)
        page.goto(f"{server}/console/#/feedback")
        page.wait_for_selector("#feedback-total")
        assert int(page.inner_text("#feedback-total")) == before[NOTES] + 1
        page.goto(f"{server}/console/#/models")
        page.wait_for_selector("#serving-profile")
        assert page.inner_text("#serving-profile").startswith(f"{NOTES}: v1")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= browser.width, f"models is {overflow}px wide at {browser.width}px"
        assert browser.errors == []
        assert browser.outside_requests() == []
    finally:
        browser.close()


def test_docs_render_with_the_network_disabled(chromium, server):
    browser = Browser(chromium, 1280)
    aborted: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    try:
        browser.context.route("**/*", only_loopback)
        page = browser.page
        page.goto(f"{server}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        schema = httpx.get(f"{server}/openapi.json").json()
        operations = sum(len(methods) for methods in schema["paths"].values())
        page.wait_for_function(
            "n => document.querySelectorAll('.opblock').length === n", arg=operations
        )
        assert "ragctl retriever" in page.inner_text(".info .title")
        assert aborted == [] and browser.outside_requests() == []
        assert [e for e in browser.errors if "error" in e] == []
    finally:
        browser.close()
