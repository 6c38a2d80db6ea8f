"""Dataset sources: BEIR folders, pair files, feedback exports, Hugging Face ids.

Each loader returns a `RawDataset`; `evalkit.datasets` turns it into an `EvalDataset`.
"""
