"""evalkit: retrieval evaluation per Matryoshka dimension and through the two-stage pipeline.

Modules: `metrics` (pure IR metrics, equal to sentence-transformers'), `datasets` (BEIR folders,
pair files, feedback exports, Hugging Face ids), `runs` (exact, pipeline and BM25 evaluation),
`report` (tables, JSON, Markdown, plots), `compare` (base vs tuned) and `gate` (promotion).

Import-light on purpose: nothing here imports torch, sentence-transformers or matplotlib at
import time; import the submodules you need.
"""

from ragctl.evalkit.errors import EvalError

__all__ = ["EvalError"]
