"""Classify free-text complaints (Chinese) into the leaf categories, with a confidence.

Features are the character 1- to 3-grams of the normalised text (full-width forms folded, Latin letters
lowered, every digit run read as one "0", punctuation splitting the text into runs), weighted by
sublinear TF-IDF and scaled to unit length; a multinomial logistic regression gives the probability of
each label. Characters serve Chinese well without a word segmenter: a complaint's category shows in two-
and three-character words (井盖, 路灯, 物业费, 渣土车) that the n-grams contain, and typos in one
character leave the other n-grams intact.

The probability of the best label is the confidence; below the model's threshold the answer says a
person must decide. One ticket is classified without scikit-learn's per-call checks: the same n-grams
are looked up in the vocabulary and multiplied with the coefficients directly (`classify`), which gives
the same probabilities as the batch path (`classify_many`) many times faster.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .corpus import LABELS, CorpusError, Example, ExampleLike, as_examples, load_corpus

# Measured on the held-out split of the shipped corpus (evaluation.py): at 0.5 about half of the unseen
# complaints are decided automatically and about 96 % of those are right; callers may pass their own.
DEFAULT_THRESHOLD = 0.5
C = 20.0  # inverse regularisation strength of the logistic regression
TOLERANCE = 1e-3  # the stochastic average gradient solver stops here: the held-out scores no longer move
RANDOM_STATE = 0
NGRAMS = (1, 3)
_DIGITS = re.compile(r"\d+")
_SEPARATORS = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Fold full-width forms and case, and read every digit run as a single 0."""
    return _DIGITS.sub("0", unicodedata.normalize("NFKC", text).lower())


def ngrams(text: str) -> list[str]:
    """The character n-grams of every punctuation-free run of the normalised text."""
    grams: list[str] = []
    low, high = NGRAMS
    for run in _SEPARATORS.split(normalize(text)):
        size = len(run)
        for n in range(low, min(high, size) + 1):
            grams.extend(run[i : i + n] for i in range(size - n + 1))
    return grams


def _check_text(text: str) -> None:
    """Refuse a text with nothing to classify."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the text to classify is empty")


@dataclass(frozen=True)
class Alternative:
    """A candidate label and its probability."""

    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The best label, its probability, the top three candidates, and whether a person must decide."""

    label: str
    confidence: float
    alternatives: tuple[Alternative, ...]
    needs_human: bool


@dataclass
class Model:
    """A trained classifier: vectoriser, logistic regression, and the confidence threshold."""

    vectorizer: TfidfVectorizer
    regression: LogisticRegression
    threshold: float = DEFAULT_THRESHOLD
    examples: int = 0
    _fast: tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Prepare the single-ticket path: vocabulary, idf, coefficients by feature, intercepts."""
        vocabulary: dict[str, int] = {str(k): int(v) for k, v in self.vectorizer.vocabulary_.items()}
        idf = np.asarray(self.vectorizer.idf_, dtype=np.float64)
        coef = np.ascontiguousarray(np.asarray(self.regression.coef_, dtype=np.float64).T)
        intercept = np.asarray(self.regression.intercept_, dtype=np.float64)
        self._fast = (vocabulary, idf, coef, intercept)

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this model can answer, in the order of its probabilities."""
        return tuple(str(label) for label in self.regression.classes_)

    def probabilities(self, text: str) -> np.ndarray:
        """The probability of every label for one text (the single-ticket path)."""
        _check_text(text)
        vocabulary, idf, coef, intercept = self._fast
        counts = Counter(gram for gram in ngrams(text) if gram in vocabulary)
        if counts:
            columns = np.fromiter((vocabulary[g] for g in counts), dtype=np.intp, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            weights = (np.log(tf) + 1.0) * idf[columns]
            weights /= math.sqrt(float(weights @ weights))
            scores = intercept + weights @ coef[columns]
        else:
            scores = intercept.copy()
        if scores.shape[0] == 1:  # two labels: a single logit for the second
            second = 1.0 / (1.0 + math.exp(-float(scores[0])))
            return np.array([1.0 - second, second])
        scores -= scores.max()
        exp = np.exp(scores)
        result: np.ndarray = exp / exp.sum()
        return result

    def classify(self, text: str, threshold: float | None = None) -> Prediction:
        """The category of one complaint; `threshold` overrides the model's own."""
        return self._prediction(self.probabilities(text), threshold)

    def classify_many(self, texts: Sequence[str], threshold: float | None = None) -> list[Prediction]:
        """The categories of many complaints at once (vectorised)."""
        if not texts:
            return []
        for text in texts:
            _check_text(text)
        matrix = self.regression.predict_proba(self.vectorizer.transform(texts))
        return [self._prediction(row, threshold) for row in matrix]

    def _prediction(self, row: np.ndarray, threshold: float | None) -> Prediction:
        """A prediction from one row of probabilities."""
        limit = self.threshold if threshold is None else threshold
        order = np.argsort(-row, kind="stable")[:3]
        labels = self.regression.classes_
        alternatives = tuple(Alternative(str(labels[i]), round(float(row[i]), 6)) for i in order)
        best = alternatives[0]
        return Prediction(best.label, best.probability, alternatives, best.probability < limit)


def train(
    examples: Iterable[ExampleLike],
    *,
    labels: Sequence[str] | None = LABELS,
    threshold: float = DEFAULT_THRESHOLD,
    weights: Sequence[float] | None = None,
) -> Model:
    """Train a model on labelled examples; `labels` is the set they must come from (None: any)."""
    checked = as_examples(examples, labels)
    if len({e.label for e in checked}) < 2:
        raise CorpusError("training needs examples of at least two labels")
    if weights is not None and len(weights) != len(checked):
        raise CorpusError("one weight per example is needed")
    if not 0 <= threshold <= 1:
        raise ValueError("the threshold must be between 0 and 1")
    vectorizer = TfidfVectorizer(analyzer=ngrams, sublinear_tf=True, dtype=np.float64)
    matrix = vectorizer.fit_transform([e.text for e in checked])
    regression = LogisticRegression(
        C=C, solver="saga", tol=TOLERANCE, max_iter=1000, random_state=RANDOM_STATE
    )
    fit_args: dict[str, Any] = {} if weights is None else {"sample_weight": np.asarray(weights, dtype=float)}
    regression.fit(matrix, [e.label for e in checked], **fit_args)
    return Model(vectorizer, regression, threshold=threshold, examples=len(checked))


@cache
def default_model() -> Model:
    """The model trained on the shipped corpus, once per process."""
    return train(load_corpus())


def retrain(
    extra: Iterable[ExampleLike],
    *,
    weight: float = 1.0,
    labels: Sequence[str] | None = LABELS,
    threshold: float = DEFAULT_THRESHOLD,
) -> Model:
    """A model trained on the shipped corpus plus the city's own closed cases (text, final category)."""
    base = load_corpus()
    own = as_examples(extra, labels)
    if weight <= 0:
        raise ValueError("the weight of the city's cases must be positive")
    weights = [1.0] * len(base) + [weight] * len(own)
    examples: list[Example] = base + own
    return train(examples, labels=labels, threshold=threshold, weights=weights)
