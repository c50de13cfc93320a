"""The labelled complaint corpus: its labels, its examples, checking them and splitting them by group."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

# The leaf categories the classifier answers: 数字城管 部件 and 事件 (GB/T 30428.2 / CJ/T 214 classes,
# 部件 公用设施/市容环境/道路交通/园林绿化, 事件 市容环境/宣传广告/施工管理/突发事件/街面秩序) and the
# 12345 hotline's local classification of requests.
CITY_LABELS: tuple[str, ...] = (
    "part.manhole_cover",
    "part.street_lamp",
    "part.litter_bin",
    "part.public_toilet",
    "part.road_surface",
    "part.guardrail",
    "part.traffic_sign",
    "part.green_space",
    "event.exposed_garbage",
    "event.illegal_ads",
    "event.construction",
    "event.waterlogging",
    "event.street_vending",
    "event.bike_parking",
)
HOTLINE_LABELS: tuple[str, ...] = (
    "hotline.noise",
    "hotline.water_supply",
    "hotline.power_supply",
    "hotline.gas",
    "hotline.public_transport",
    "hotline.social_insurance",
    "hotline.education",
    "hotline.property_management",
    "hotline.wage_arrears",
    "hotline.consumer_rights",
    "hotline.food_safety",
    "hotline.pollution",
    "hotline.policy_enquiry",
)
LABELS: tuple[str, ...] = CITY_LABELS + HOTLINE_LABELS
CORPUS_RESOURCE = "data/corpus.jsonl"


class CorpusError(ValueError):
    """Training data is unusable; the message names the example and what is wrong with it."""


@dataclass(frozen=True)
class Example:
    """One labelled complaint; examples composed from the same complaint share a group."""

    text: str
    label: str
    group: str = ""


ExampleLike = Example | tuple[str, str]


def as_examples(items: Iterable[ExampleLike], labels: Collection[str] | None = LABELS) -> list[Example]:
    """Checked examples: text not empty, label known (any label when `labels` is None)."""
    examples: list[Example] = []
    for number, item in enumerate(items, start=1):
        example = item if isinstance(item, Example) else Example(text=item[0], label=item[1])
        if not isinstance(example.text, str) or not example.text.strip():
            raise CorpusError(f"example {number}: the text is empty")
        if not isinstance(example.label, str) or not example.label:
            raise CorpusError(f"example {number}: the label is empty")
        if labels is not None and example.label not in labels:
            raise CorpusError(f"example {number}: unknown label {example.label!r}")
        examples.append(example)
    return examples


@cache
def _shipped() -> tuple[Example, ...]:
    """The corpus shipped with the package, read once."""
    text = resources.files(__package__).joinpath(CORPUS_RESOURCE).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            rows.append(
                Example(text=row["text"], label=row["label"], group=row.get("group") or f"line{number}")
            )
    return tuple(as_examples(rows))


def load_corpus() -> list[Example]:
    """The shipped labelled corpus."""
    return list(_shipped())


def split(
    examples: Sequence[Example], test_share: float = 0.25, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Train and held-out examples: per label, `test_share` of its groups go wholly to the held-out part."""
    if not 0 < test_share < 1:
        raise ValueError("test_share must be between 0 and 1")
    groups: dict[str, dict[str, list[Example]]] = defaultdict(dict)
    for example in examples:
        group = example.group or example.text
        groups[example.label].setdefault(group, []).append(example)
    rng = random.Random(seed)
    held: set[str] = set()
    for label in sorted(groups):
        names = sorted(groups[label])
        if len(names) < 2:
            continue
        rng.shuffle(names)
        held.update(names[: max(1, round(len(names) * test_share))])
    train = [e for e in examples if (e.group or e.text) not in held]
    test = [e for e in examples if (e.group or e.text) in held]
    return train, test
