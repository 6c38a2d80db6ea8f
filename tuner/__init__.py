"""tuner: the tuning loop -- training pairs, hard negatives, training, registry, promotion.

Import-light: torch and sentence-transformers are imported inside the functions that train.
"""
