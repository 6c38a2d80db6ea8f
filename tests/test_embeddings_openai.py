"""The official `openai` package calls ragctl's `POST /v1/embeddings` on a real server and gets
the vectors of ragctl's own encoder (the packaged model serving the collection)."""

import numpy as np
import pytest

from ragctl.core.matryoshka import normalize

TEXTS = ["How often are the grinder burrs replaced?", "Steam oat milk to 55 degrees."]


@pytest.fixture
def openai_client(live_server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=live_server.read_key, max_retries=0
    )


def _cosines(got, expected):
    got = np.asarray(got, dtype=np.float32)
    return np.sum(normalize(got) * normalize(expected), axis=1)


def test_openai_package_gets_the_serving_models_vectors(openai_client, real_encoder):
    # The package asks for base64 by default and decodes it: ragctl's float32 bytes.
    response = openai_client.embeddings.create(model="ragctl", input=TEXTS)
    expected = real_encoder.encode_documents(TEXTS).full
    got = [d.embedding for d in response.data]
    assert [d.index for d in response.data] == [0, 1]
    assert np.all(_cosines(got, expected) >= 0.9999)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert response.model == "default"  # the model ref; its version and collection ride along
    extra = response.model_extra or {}
    assert (extra["model_version"], extra["collection"]) == (1, "docs__v1")
    assert response.usage.prompt_tokens > 0


def test_openai_package_floats_dimensions_and_query_prompt(openai_client, real_encoder):
    response = openai_client.embeddings.create(
        model="docs", input=TEXTS[1], encoding_format="float", dimensions=64
    )
    [item] = response.data
    expected = normalize(real_encoder.encode_documents([TEXTS[1]]).full[:, :64])
    assert len(item.embedding) == 64
    assert _cosines([item.embedding], expected)[0] >= 0.9999
    queries = openai_client.embeddings.create(
        model="ragctl", input=TEXTS[0], extra_body={"input_type": "query"}
    )
    expected = real_encoder.encode_queries([TEXTS[0]]).full
    assert _cosines([queries.data[0].embedding], expected)[0] >= 0.9999


def test_openai_package_sees_ragctls_errors(openai_client):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.body["code"] == "collection_not_found"
    with pytest.raises(openai.UnprocessableEntityError):
        openai_client.embeddings.create(model="ragctl", input=[[1, 2, 3]])
