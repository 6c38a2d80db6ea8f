"""Token-aware chunking with the embedding model's own tokenizer (pure, no I/O).

Chunks are measured in the model's tokens, so no chunk is truncated by the encoder once the
special tokens and a document prompt are added. Every chunk keeps its character offsets into the
document text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ragctl.core.ids import chunk_id
from ragctl.core.records import Chunk, Document
from ragctl.ingest.errors import IngestError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

MIN_CHUNK_SIZE_TOKENS = 8
# A chunk also counts as at least one token per this many characters. Real words are far denser
# (about 4 characters per token); the cap only splits long unknown-word runs (e.g. 5,000 letters
# with no space or punctuation), which the tokenizer would count as a single [UNK] token.
MAX_CHARS_PER_TOKEN = 10
# Longer documents are chunked one segment of about this many characters at a time, cut at a
# paragraph (else line, sentence, word) boundary: the splitter's cost grows faster than the
# text, and a caller can embed and store each segment's chunks before the next is chunked
# (progress, bounded memory). Shorter documents are chunked whole, exactly as before.
SEGMENT_CHARS = 200_000
_SEGMENT_SEPARATORS = ("\n\n", "\n", ". ", " ")


class Chunker:
    """Splits documents into chunks of at most `effective_capacity` tokens.

    Uses `semantic_text_splitter`: each chunk is made of the largest semantic units (paragraphs,
    sentences, words, ...) that fit; consecutive chunks overlap by at most `overlap_tokens`.

    Args:
        tokenizer: The model's fast tokenizer (`tokenizers.Tokenizer`); it is copied, never changed.
        chunk_size_tokens: Wanted chunk size in tokens (without special tokens), >= 8.
        overlap_tokens: Tokens shared by consecutive chunks at most, 0 <= overlap < chunk size.
        max_seq_length: The encoder's input limit in tokens, special tokens included.
        reserved_tokens: Tokens taken by a document prompt placed before each chunk.
        segment_chars: Longer documents are chunked one segment of about this many characters
            at a time (see `SEGMENT_CHARS`).

    Raises:
        IngestError: A value is outside its allowed range.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        chunk_size_tokens: int,
        overlap_tokens: int,
        max_seq_length: int,
        reserved_tokens: int = 0,
        segment_chars: int = SEGMENT_CHARS,
    ) -> None:
        from semantic_text_splitter import TextSplitter
        from tokenizers import Tokenizer

        if chunk_size_tokens < MIN_CHUNK_SIZE_TOKENS:
            raise IngestError(
                f"chunk_size_tokens must be >= {MIN_CHUNK_SIZE_TOKENS}, got {chunk_size_tokens}"
            )
        if not 0 <= overlap_tokens < chunk_size_tokens:
            raise IngestError(
                f"overlap_tokens must be in [0, chunk_size_tokens={chunk_size_tokens}), "
                f"got {overlap_tokens}"
            )
        if reserved_tokens < 0:
            raise IngestError(f"reserved_tokens must be >= 0, got {reserved_tokens}")
        if segment_chars < 1_000:
            raise IngestError(f"segment_chars must be >= 1000, got {segment_chars}")
        self.segment_chars = segment_chars
        tok = Tokenizer.from_str(tokenizer.to_str())
        tok.no_truncation()
        tok.no_padding()
        self._tokenizer = tok
        self.special_tokens: int = tok.num_special_tokens_to_add(False)
        available = max_seq_length - self.special_tokens - reserved_tokens
        if available < MIN_CHUNK_SIZE_TOKENS:
            raise IngestError(
                f"max_seq_length={max_seq_length} leaves {available} tokens per chunk after "
                f"{self.special_tokens} special tokens and reserved_tokens={reserved_tokens}; "
                f"need >= {MIN_CHUNK_SIZE_TOKENS}"
            )
        self._capacity = min(chunk_size_tokens, available)
        if overlap_tokens >= self._capacity:
            raise IngestError(
                f"overlap_tokens must be < the effective chunk capacity {self._capacity} "
                f"(max_seq_length={max_seq_length} - {self.special_tokens} special tokens - "
                f"reserved_tokens={reserved_tokens}), got {overlap_tokens}"
            )
        self.overlap_tokens = overlap_tokens
        self.max_seq_length = max_seq_length
        self.reserved_tokens = reserved_tokens
        self._splitter = TextSplitter.from_callback(
            self._size, self._capacity, overlap=overlap_tokens, trim=True
        )

    @property
    def effective_capacity(self) -> int:
        """Most tokens in one chunk (without special tokens or prompt)."""
        return self._capacity

    def count_tokens(self, text: str) -> int:
        """Number of tokens in `text`, without special tokens."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _size(self, text: str) -> int:
        return max(self.count_tokens(text), -(-len(text) // MAX_CHARS_PER_TOKEN))

    def chunk(self, document: Document) -> list[Chunk]:
        """Split a document into chunks with stable ids and character offsets.

        `document.text[chunk.start:chunk.end] == chunk.text` for every chunk; a document of only
        whitespace gives no chunks.
        """
        return list(self.iter_chunks(document))

    def iter_chunks(self, document: Document) -> Iterator[Chunk]:
        """The chunks of `chunk()`, produced lazily one segment (`segment_chars`) at a time."""
        text = document.text
        index = 0
        for seg_start, segment in split_segments(text, self.segment_chars):
            previous = -1
            for offset, piece in self._splitter.chunk_indices(segment):
                local = self._locate(segment, offset, piece, previous + 1)
                previous = local
                start = seg_start + local
                yield Chunk(
                    chunk_id=chunk_id(document.doc_id, index, piece),
                    doc_id=document.doc_id,
                    index=index,
                    text=piece,
                    start=start,
                    end=start + len(piece),
                    source=document.source,
                    metadata=dict(document.metadata),
                )
                index += 1

    @staticmethod
    def _locate(text: str, offset: int, piece: str, search_from: int) -> int:
        # semantic-text-splitter 0.33 returns character offsets; should a version return byte
        # offsets instead, find the piece from the previous chunk's start.
        if text.startswith(piece, offset):
            return offset
        start = text.find(piece, search_from)
        if start < 0:
            raise IngestError(f"chunk at offset {offset} not found in the document text")
        logger.debug("chunk offset %d did not match; found the chunk at %d", offset, start)
        return start


def split_segments(text: str, size: int) -> Iterator[tuple[int, str]]:
    """(offset, segment) pieces of at most `size` characters that cover `text` in order.

    Each cut is at the last paragraph break in the segment's second half, else the last line
    break, sentence end or space there, else exactly at `size`. Text of at most `size`
    characters is one segment.
    """
    start = 0
    while len(text) - start > size:
        end = start + size
        floor = start + size // 2
        cut = end
        for separator in _SEGMENT_SEPARATORS:
            found = text.rfind(separator, floor, end)
            if found >= 0:
                cut = found + len(separator)
                break
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]
