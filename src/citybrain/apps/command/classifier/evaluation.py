"""How well the classifier does on complaints it has not seen: a grouped held-out split and its scores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sklearn.metrics import f1_score

from .corpus import Example, load_corpus, split
from .model import DEFAULT_THRESHOLD, Model, train

TEST_SHARE = 0.25
SEED = 0


@dataclass(frozen=True)
class Scores:
    """Accuracy, macro-F1 and the F1 of each label of some predictions against the truth."""

    accuracy: float
    macro_f1: float
    per_label_f1: dict[str, float]
    # (true label, predicted label, count), the most frequent confusions first
    worst_pairs: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True)
class Evaluation:
    """The held-out scores of a model trained on the rest, and how its threshold splits the work."""

    train_examples: int
    test_examples: int
    scores: Scores
    threshold: float
    # share of held-out complaints at or above the threshold, and the accuracy on those
    decided_share: float
    decided_accuracy: float
    model: Model


def score(truth: Sequence[str], predicted: Sequence[str], pairs: int = 5) -> Scores:
    """Scores of predicted labels against true ones (labels: those in the truth)."""
    if len(truth) != len(predicted) or not truth:
        raise ValueError("truth and predictions must be non-empty and of the same length")
    labels = sorted(set(truth))
    f1 = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    worst = tuple(
        (t, p, n) for (t, p), n in sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:pairs]
    )
    return Scores(
        accuracy=sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth),
        macro_f1=float(f1.mean()),
        per_label_f1={label: float(value) for label, value in zip(labels, f1, strict=True)},
        worst_pairs=worst,
    )


def held_out(
    examples: Sequence[Example] | None = None, test_share: float = TEST_SHARE, seed: int = SEED
) -> tuple[list[Example], list[Example]]:
    """The grouped, per-label held-out split of `examples` (default: the shipped corpus)."""
    return split(load_corpus() if examples is None else examples, test_share, seed)


def evaluate(
    examples: Sequence[Example] | None = None,
    *,
    test_share: float = TEST_SHARE,
    seed: int = SEED,
    threshold: float = DEFAULT_THRESHOLD,
    trainer: Callable[[list[Example]], Model] = train,
) -> Evaluation:
    """Train on the training part of the split and score on the held-out part."""
    train_part, test_part = held_out(examples, test_share, seed)
    model = trainer(train_part)
    predictions = model.classify_many([e.text for e in test_part], threshold=threshold)
    truth = [e.label for e in test_part]
    decided = [(p.label == t) for p, t in zip(predictions, truth, strict=True) if not p.needs_human]
    return Evaluation(
        train_examples=len(train_part),
        test_examples=len(test_part),
        scores=score(truth, [p.label for p in predictions]),
        threshold=threshold,
        decided_share=len(decided) / len(test_part),
        decided_accuracy=sum(decided) / len(decided) if decided else 0.0,
        model=model,
    )
