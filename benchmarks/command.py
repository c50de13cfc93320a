"""Command app figures against baselines measured in the same run; prints one JSON line.

1. Complaint classification on the held-out part of the shipped corpus (complaints grouped by the core
   they were composed from, so none of them was seen in training): accuracy, macro-F1, the share decided
   without a person at the model's threshold and the accuracy of those, the worst confusions.
2. Classification throughput in tickets per second on the held-out texts, cycled to
   CITYBRAIN_BENCH_TICKETS (20000) tickets: the single-ticket path (`Model.classify`, one call per ticket,
   as intake does) and the batch path (`Model.classify_many`, CITYBRAIN_BENCH_BATCH (1000) per call),
   each the best of CITYBRAIN_BENCH_REPEAT (3) runs.
3. Baseline: a keyword lookup, the names of the categories (labels.md) cut into their terms and scanned
   with `str.__contains__`; the label with most terms found wins, ties to the first in the tree, and a
   complaint with no term gets the most frequent training label. Its accuracy, macro-F1 and throughput
   are measured on the same texts.
4. Training time on the whole shipped corpus (what `default_model()` costs once per process).

Intake + classification + routing of tickets per second, and the KPI figures, are measured in the section
marked INTAKE below once the command app's services exist.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from citybrain.apps.command.classifier import LABELS, evaluate, held_out, load_corpus, score, train

TICKETS = int(os.environ.get("CITYBRAIN_BENCH_TICKETS", "20000"))
BATCH = int(os.environ.get("CITYBRAIN_BENCH_BATCH", "1000"))
REPEAT = int(os.environ.get("CITYBRAIN_BENCH_REPEAT", "3"))

# Terms of each category's name (labels.md), with the everyday short form where the name has one.
NAME_TERMS: dict[str, tuple[str, ...]] = {
    "part.manhole_cover": ("井盖",),
    "part.street_lamp": ("路灯",),
    "part.litter_bin": ("垃圾箱", "垃圾桶", "满溢"),
    "part.public_toilet": ("公厕", "厕所"),
    "part.road_surface": ("道路破损", "坑洼", "路面"),
    "part.guardrail": ("护栏", "隔离栏", "栏杆"),
    "part.traffic_sign": ("交通标志", "信号灯", "红绿灯"),
    "part.green_space": ("绿地", "行道树", "绿化"),
    "event.exposed_garbage": ("暴露垃圾", "垃圾乱倒", "倒垃圾", "垃圾"),
    "event.illegal_ads": ("小广告", "张贴", "广告"),
    "event.construction": ("施工", "渣土", "工地", "围挡"),
    "event.waterlogging": ("积水", "内涝"),
    "event.street_vending": ("占道经营", "摊贩", "摆摊"),
    "event.bike_parking": ("共享单车", "乱停", "停放"),
    "hotline.noise": ("噪声", "噪音", "扰民"),
    "hotline.water_supply": ("供水", "停水", "水压", "水质"),
    "hotline.power_supply": ("供电", "停电", "电压"),
    "hotline.gas": ("燃气", "停气", "天然气"),
    "hotline.public_transport": ("公共交通", "公交", "出租车"),
    "hotline.social_insurance": ("社保", "医保"),
    "hotline.education": ("教育", "入学", "学校", "培训"),
    "hotline.property_management": ("物业",),
    "hotline.wage_arrears": ("拖欠工资", "工资", "劳动"),
    "hotline.consumer_rights": ("消费", "退款", "价格", "质量"),
    "hotline.food_safety": ("食品", "食品安全"),
    "hotline.pollution": ("污染", "废气", "污水", "油烟"),
    "hotline.policy_enquiry": ("政策", "咨询"),
}


def keyword_classifier(fallback: str) -> Callable[[str], str]:
    """The keyword-lookup baseline: most category-name terms found wins."""
    table = [(label, NAME_TERMS[label]) for label in LABELS]

    def classify(text: str) -> str:
        best, hits = fallback, 0
        for label, terms in table:
            found = sum(1 for term in terms if term in text)
            if found > hits:
                best, hits = label, found
        return best

    return classify


def per_second(work: Callable[[], int]) -> float:
    """Tickets per second of the best of REPEAT runs of `work` (which returns the tickets it did)."""
    rates = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        done = work()
        rates.append(done / (time.perf_counter() - start))
    return max(rates)


def cycled(texts: Sequence[str], n: int) -> list[str]:
    """`n` texts, repeating `texts`."""
    return [texts[i % len(texts)] for i in range(n)]


def classification_figures() -> dict[str, Any]:
    """Held-out quality and throughput of the classifier and of the keyword baseline."""
    result = evaluate()
    model = result.model
    train_part, test_part = held_out()
    truth = [e.label for e in test_part]
    texts = [e.text for e in test_part]
    fallback = Counter(e.label for e in train_part).most_common(1)[0][0]
    baseline = keyword_classifier(fallback)
    baseline_scores = score(truth, [baseline(t) for t in texts])
    stream = cycled(texts, TICKETS)

    def single() -> int:
        classify = model.classify
        for text in stream:
            classify(text)
        return len(stream)

    def batch() -> int:
        for k in range(0, len(stream), BATCH):
            model.classify_many(stream[k : k + BATCH])
        return len(stream)

    def lookup() -> int:
        for text in stream:
            baseline(text)
        return len(stream)

    single_rate, batch_rate, baseline_rate = per_second(single), per_second(batch), per_second(lookup)
    corpus = load_corpus()
    start = time.perf_counter()
    train(corpus)
    train_seconds = time.perf_counter() - start
    scores = result.scores
    return {
        "corpus_examples": len(corpus),
        "train_examples": result.train_examples,
        "test_examples": result.test_examples,
        "accuracy": round(scores.accuracy, 4),
        "macro_f1": round(scores.macro_f1, 4),
        "threshold": result.threshold,
        "decided_share": round(result.decided_share, 4),
        "decided_accuracy": round(result.decided_accuracy, 4),
        "worst_label_f1": min(scores.per_label_f1.items(), key=lambda kv: kv[1])[0],
        "worst_label_f1_value": round(min(scores.per_label_f1.values()), 4),
        "worst_pairs": [list(pair) for pair in scores.worst_pairs],
        "baseline_keyword_accuracy": round(baseline_scores.accuracy, 4),
        "baseline_keyword_macro_f1": round(baseline_scores.macro_f1, 4),
        "single_tickets_per_s": round(single_rate),
        "batch_tickets_per_s": round(batch_rate),
        "baseline_keyword_tickets_per_s": round(baseline_rate),
        "ratio_single_to_baseline": round(single_rate / baseline_rate, 4),
        "ratio_batch_to_baseline": round(batch_rate / baseline_rate, 4),
        "ratio_accuracy_to_baseline": round(scores.accuracy / baseline_scores.accuracy, 3),
        "train_seconds_full_corpus": round(train_seconds, 2),
    }


def main() -> None:
    """Measure and print one JSON line."""
    figures: dict[str, Any] = {"tickets": TICKETS, "cpus": os.cpu_count()}
    figures |= classification_figures()
    # INTAKE: intake + classification + routing of tickets per second through the command app's
    # services (goal 1,000/s on 2 cores) and the KPI figures are added here when those services exist.
    figures["goal_tickets_per_s"] = 1000
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
