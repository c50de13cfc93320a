"""The shipped corpus: labels, size, integrity, and the grouped split."""

from __future__ import annotations

from collections import Counter

import pytest

from citybrain.apps.command.classifier import LABELS, CorpusError, Example, load_corpus, split
from citybrain.apps.command.classifier.compose import compose
from citybrain.apps.command.classifier.corpus import as_examples

# The leaf category codes of the command app's category tree (数字城管 部件/事件 and 12345 requests).
EXPECTED = {
    "part.manhole_cover", "part.street_lamp", "part.litter_bin", "part.public_toilet", "part.road_surface",
    "part.guardrail", "part.traffic_sign", "part.green_space", "event.exposed_garbage", "event.illegal_ads",
    "event.construction", "event.waterlogging", "event.street_vending", "event.bike_parking",
    "hotline.noise", "hotline.water_supply", "hotline.power_supply", "hotline.gas",
    "hotline.public_transport", "hotline.social_insurance", "hotline.education",
    "hotline.property_management", "hotline.wage_arrears", "hotline.consumer_rights",
    "hotline.food_safety", "hotline.pollution", "hotline.policy_enquiry",
}  # fmt: skip


def test_labels_are_the_category_codes() -> None:
    """The classifier's labels are exactly the 27 leaf codes, without repeats."""
    assert len(LABELS) == len(set(LABELS)) == 27
    assert set(LABELS) == EXPECTED


def test_every_label_has_many_varied_examples() -> None:
    """Every label has at least 60 examples from at least 20 different complaints."""
    corpus = load_corpus()
    assert {e.label for e in corpus} == EXPECTED
    per_label = Counter(e.label for e in corpus)
    groups = Counter(label for label, _ in {(e.label, e.group) for e in corpus})
    assert min(per_label.values()) >= 60
    assert min(groups.values()) >= 20


def test_no_duplicates_no_empty_text_and_groups_within_one_label() -> None:
    """Texts are unique and not empty; a group never spans two labels."""
    corpus = load_corpus()
    texts = [e.text for e in corpus]
    assert len(texts) == len(set(texts))
    assert all(t.strip() == t and t for t in texts)
    labels_of_group: dict[str, set[str]] = {}
    for e in corpus:
        labels_of_group.setdefault(e.group, set()).add(e.label)
    assert all(len(labels) == 1 for labels in labels_of_group.values())


def test_shipped_file_is_the_composed_corpus() -> None:
    """data/corpus.jsonl is what compose.py writes (edit the parts there, then rewrite the file)."""
    assert [(r["text"], r["label"], r["group"]) for r in compose()] == [
        (e.text, e.label, e.group) for e in load_corpus()
    ]


def test_split_keeps_groups_apart_and_every_label_on_both_sides() -> None:
    """No group is in both parts; each label is in both; the split is the same every time."""
    corpus = load_corpus()
    train, test = split(corpus, 0.25, seed=0)
    assert len(train) + len(test) == len(corpus)
    assert not {e.group for e in train} & {e.group for e in test}
    assert {e.label for e in train} == {e.label for e in test} == EXPECTED
    assert 0.2 < len(test) / len(corpus) < 0.3
    assert split(corpus, 0.25, seed=0) == (train, test)
    assert split(corpus, 0.25, seed=1) != (train, test)
    with pytest.raises(ValueError, match="test_share"):
        split(corpus, 1.0)


def test_bad_training_data_is_named() -> None:
    """Empty texts and unknown labels are refused with the example's number."""
    with pytest.raises(CorpusError, match="example 2: the text is empty"):
        as_examples([("井盖坏了", "part.manhole_cover"), ("  ", "part.street_lamp")])
    with pytest.raises(CorpusError, match=r"example 1: unknown label 'part\.bench'"):
        as_examples([Example("椅子坏了", "part.bench")])
    with pytest.raises(CorpusError, match="example 1: the label is empty"):
        as_examples([("椅子坏了", "")])
    assert as_examples([("椅子坏了", "part.bench")], labels=None) == [Example("椅子坏了", "part.bench")]
