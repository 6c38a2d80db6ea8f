"""`POST /v1/embeddings`: OpenAI's embeddings API, served by a collection's current model."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import MetricsDep, ReadDep, ServiceDep
from ragctl.retriever.error_handlers import UPSERT_RESPONSES
from ragctl.retriever.schemas import (
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[ReadDep])


@router.post("/embeddings", response_model=EmbeddingsResponse, responses=UPSERT_RESPONSES)
async def embeddings(
    body: EmbeddingsRequest, service: ServiceDep, metrics: MetricsDep
) -> EmbeddingsResponse:
    """Embed texts with the model serving a collection (`model`: its name, or `ragctl` for
    the default collection), as OpenAI's `POST /v1/embeddings` does.

    Vectors are L2-normalized; `dimensions` keeps the first N and renormalizes (the
    Matryoshka shortlist of ragctl's own search). `encoding_format: base64` sends each vector
    as base64 of little-endian float32 bytes. The answer names the model ref and version
    (`model`, `model_version`) and the physical collection they serve, so vectors can be
    matched to the model that made them; after a promotion they change together.
    """
    outcome = await run_in_threadpool(service.embed, body)
    vectors = outcome.vectors
    data = [
        Embedding(index=i, embedding=_encoded(row, body.encoding_format))
        for i, row in enumerate(vectors)
    ]
    metrics.embedding_inputs.labels(outcome.serving.spec.name).inc(len(data))
    return EmbeddingsResponse(
        data=data,
        model=outcome.serving.spec.model,
        usage=EmbeddingsUsage(prompt_tokens=outcome.tokens, total_tokens=outcome.tokens),
        collection=outcome.serving.physical,
        model_version=outcome.serving.model_version,
        dimensions=int(vectors.shape[1]),
    )


def _encoded(row: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in row]
