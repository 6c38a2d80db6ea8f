"""Synthetic training questions for stored chunks.

Two generators:
- `LLMQuestionGenerator`: an OpenAI-compatible chat endpoint (vLLM, Ollama, OpenAI), called
  concurrently with retries and backoff; answers are cached on disk so a rerun pays nothing.
- `offline_questions`: no model at all -- the inverse cloze task (Lee et al., 2019): one
  sentence of the chunk is the query and the rest of the chunk the positive.

`round_trip_filter` keeps a question only if the serving model ranks its chunk in the top k
(the consistency filter of Promptagator), which drops vague or unanswerable questions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.core.collections import BoundCollection
from ragctl.core.records import Chunk
from ragctl.core.search import SearchParams
from ragctl.core.settings import LLMSettings
from ragctl.tuner.errors import TunerError
from ragctl.tuner.pairs import TrainingPair

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

PROMPT_VERSION = "v1"
_PROMPT = (
    "You write search queries for a retrieval system. Read the passage and write {n} different "
    "questions that a user could ask and that this passage answers. Vary the wording; do not "
    'copy long phrases from the passage. Answer with JSON only: {{"questions": ["..."]}}.\n\n'
    "Passage:\n{text}"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class SyntheticQuestion:
    question: str
    chunk_id: str
    positive: str
    method: str  # "llm" | "ict"

    def as_pair(self) -> TrainingPair:
        return TrainingPair(self.question, self.positive, self.chunk_id, origin="synthetic")


def offline_questions(
    chunks: Sequence[Chunk], *, per_chunk: int = 1, seed: int = 42, keep_sentence: float = 0.1
) -> list[SyntheticQuestion]:
    """Inverse cloze task: a sentence (5-40 words) is the query; the positive is the chunk
    without it (kept in with probability `keep_sentence`, so lexical overlap still counts)."""
    rng = random.Random(seed)
    out = []
    for chunk in chunks:
        sentences = [s.strip() for s in _SENTENCE.split(chunk.text) if s.strip()]
        usable = [s for s in sentences if 5 <= len(s.split()) <= 40]
        if len(sentences) < 2 or not usable:
            continue
        for sentence in rng.sample(usable, min(per_chunk, len(usable))):
            if rng.random() < keep_sentence:
                positive = chunk.text
            else:
                positive = " ".join(s for s in sentences if s != sentence)
            out.append(SyntheticQuestion(sentence, chunk.chunk_id, positive, "ict"))
    return out


class _Cache:
    """Generated questions by (model, prompt version, n, text) in SQLite; thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS questions (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, n: int, text: str) -> str:
        return hashlib.sha256(f"{model}\x1f{PROMPT_VERSION}\x1f{n}\x1f{text}".encode()).hexdigest()

    def get(self, key: str) -> list[str] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM questions WHERE key = ?", (key,)).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def put(self, key: str, questions: list[str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO questions VALUES (?, ?)", (key, json.dumps(questions))
            )
            self._db.commit()

    def close(self) -> None:
        self._db.close()


class LLMQuestionGenerator:
    """Questions from an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(
        self,
        settings: LLMSettings,
        cache_path: Path,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.base_url:
            raise TunerError(
                "no LLM endpoint configured: set tuner.llm.base_url (e.g. "
                "RAGCTL_TUNER__LLM__BASE_URL=http://localhost:11434/v1) or use --offline"
            )
        import httpx

        self.settings = settings
        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._client = client or httpx.Client(timeout=settings.timeout_s)
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._headers = headers
        self._cache = _Cache(cache_path)
        self._sleep = sleep
        self.calls = 0  # HTTP requests made (cache hits make none)

    def generate(
        self,
        chunks: Sequence[Chunk],
        *,
        per_chunk: int = 2,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[SyntheticQuestion]:
        """Questions for every chunk; a chunk whose request keeps failing is logged and skipped."""
        done = 0
        lock = threading.Lock()

        def one(chunk: Chunk) -> list[SyntheticQuestion]:
            nonlocal done
            try:
                questions = self._questions(chunk.text, per_chunk)
            except TunerError as exc:
                logger.warning("no questions for chunk %s: %s", chunk.chunk_id, exc)
                questions = []
            with lock:
                done += 1
                if on_progress is not None:
                    on_progress(done, len(chunks))
            return [SyntheticQuestion(q, chunk.chunk_id, chunk.text, "llm") for q in questions]

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            results = list(pool.map(one, chunks))
        return [q for batch in results for q in batch]

    def close(self) -> None:
        self._cache.close()

    def _questions(self, text: str, n: int) -> list[str]:
        key = _Cache.key(self.settings.model, n, text)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        content = self._complete(_PROMPT.format(n=n, text=text))
        questions = parse_questions(content)[:n]
        if not questions:
            raise TunerError(f"the model answered without questions: {content[:120]!r}")
        self._cache.put(key, questions)
        return questions

    def _complete(self, prompt: str) -> str:
        import httpx

        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.7,
        }
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                self.calls += 1
                response = self._client.post(self._url, json=body, headers=self._headers)
                if response.status_code == 200:
                    return str(response.json()["choices"][0]["message"]["content"])
                if response.status_code not in (408, 409, 429) and response.status_code < 500:
                    raise TunerError(
                        f"LLM endpoint answered {response.status_code}: {response.text[:200]}"
                    )
                problem = f"HTTP {response.status_code}"
                header = response.headers.get("retry-after")
                retry_after = (
                    float(header) if header and header.replace(".", "", 1).isdigit() else None
                )
            except (httpx.TransportError, KeyError, IndexError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                delay = (
                    retry_after
                    if retry_after is not None
                    else min(30.0, 2.0**attempt) * (1 + random.random() / 2)
                )
                logger.info(
                    "LLM request failed (%s); retry %d in %.1f s", problem, attempt + 1, delay
                )
                self._sleep(delay)
        raise TunerError(f"LLM endpoint failed {attempts} times, last: {problem}")


def parse_questions(content: str) -> list[str]:
    """Questions from a model answer: JSON `{"questions": [...]}` or a list, else one per line."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").split("\n", 1)[-1]
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            data = json.loads(text[start : max(text.rfind("}"), text.rfind("]")) + 1])
            items = data.get("questions", []) if isinstance(data, dict) else data
            return [str(q).strip() for q in items if str(q).strip()]
        except (json.JSONDecodeError, AttributeError):
            pass
    lines = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", line).strip() for line in text.splitlines()]
    return [line for line in lines if line.endswith("?")]


def round_trip_filter(
    questions: Sequence[SyntheticQuestion],
    serving: BoundCollection,
    *,
    k: int,
    batch_size: int = 256,
) -> list[SyntheticQuestion]:
    """Questions whose own chunk the serving model ranks in its top `k`."""
    kept = []
    params = SearchParams(k=k, shortlist=max(100, k))
    for start in range(0, len(questions), batch_size):
        batch = questions[start : start + batch_size]
        vectors = serving.encoder.encode_queries([q.question for q in batch])
        hits = serving.store.search_batch(serving.physical, vectors, params)
        for question, found in zip(batch, hits, strict=True):
            if any(h.chunk_id == question.chunk_id for h in found):
                kept.append(question)
    logger.info("round-trip filter kept %d of %d questions", len(kept), len(questions))
    return kept
