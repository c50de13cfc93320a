"""Classification of free-text complaints (Chinese) into the command app's leaf categories."""

from __future__ import annotations

from .corpus import CITY_LABELS, HOTLINE_LABELS, LABELS, CorpusError, Example, load_corpus, split
from .evaluation import Evaluation, Scores, evaluate, held_out, score
from .model import DEFAULT_THRESHOLD, Alternative, Model, Prediction, default_model, retrain, train

__all__ = [
    "CITY_LABELS",
    "DEFAULT_THRESHOLD",
    "HOTLINE_LABELS",
    "LABELS",
    "Alternative",
    "CorpusError",
    "Evaluation",
    "Example",
    "Model",
    "Prediction",
    "Scores",
    "default_model",
    "evaluate",
    "held_out",
    "load_corpus",
    "retrain",
    "score",
    "split",
    "train",
]
