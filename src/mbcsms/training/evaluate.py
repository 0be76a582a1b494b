"""Figures for the learned models: out-of-fold (leave one set out) on the training examples, and
first contact with a new set (the shipped model on examples it never saw).

Crisis recall: crises flagged / crises. False alarms: other messages flagged / other messages.
Topic accuracy: messages that are not crises and carry a topic label (``not_crisis`` carries
none) whose best topic is right, a best topic below the floor counting as ``out_of_scope``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .examples import OUT_OF_SCOPE, Example, ExamplesError, read_file


@dataclass
class Tally:
    crises: int = 0
    caught: int = 0
    others: int = 0
    alarms: int = 0
    topical: int = 0
    right: int = 0
    extra: dict[str, list[int]] = field(default_factory=dict)  # other detectors: [caught, alarms]

    def add(self, example: Example, flagged: bool, topic: str | None, others: dict[str, bool] | None = None) -> None:
        if example.crisis:
            self.crises += 1
            self.caught += flagged
        else:
            self.others += 1
            self.alarms += flagged
            if example.topic:
                self.topical += 1
                self.right += topic == example.topic
        for name, hit in (others or {}).items():
            counts = self.extra.setdefault(name, [0, 0])
            counts[0 if example.crisis else 1] += hit

    @staticmethod
    def percent(part: int, whole: int) -> str:
        return f"{100 * part / whole:5.1f}%" if whole else "    -"

    def row(self) -> str:
        text = (f"crisis recall {self.percent(self.caught, self.crises)} ({self.caught}/{self.crises})  "
                f"false alarms {self.percent(self.alarms, self.others)} ({self.alarms}/{self.others})  "
                f"topic {self.percent(self.right, self.topical)} ({self.right}/{self.topical})")
        for name, (caught, alarms) in self.extra.items():
            text += (f"  | {name}: recall {self.percent(caught, self.crises).strip()}"
                     f" false alarms {self.percent(alarms, self.others).strip()}")
        return text


def decided_topic(topic: str, confidence: float, floor: float) -> str:
    return topic if confidence >= floor else OUT_OF_SCOPE


def tallies(rows: Iterable[tuple[Example, bool, str | None, dict[str, bool] | None]]
            ) -> tuple[dict[str, Tally], dict[str, Tally], Tally]:
    """Per set, per language, and overall."""
    per_set: dict[str, Tally] = defaultdict(Tally)
    per_lang: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    for example, flagged, topic, others in rows:
        for tally in (per_set[example.set], per_lang[example.lang], total):
            tally.add(example, flagged, topic, others)
    return dict(per_set), dict(per_lang), total


def report(per_set: dict[str, Tally], per_lang: dict[str, Tally], total: Tally) -> list[str]:
    width = max((len(name) for name in per_set), default=8)
    lines = [f"  {name:<{width}}  {tally.row()}" for name, tally in sorted(per_set.items())]
    lines.append("")
    lines += [f"  {lang:<{width}}  {tally.row()}" for lang, tally in sorted(per_lang.items())]
    lines.append(f"  {'all':<{width}}  {total.row()}")
    return lines


def read_set_dir(directory: Path) -> list[Example]:
    """A new set as delivered: ``<dir>/<lang>.tsv`` files (``/work/corpus/<set>/en.tsv``)."""
    examples: list[Example] = []
    files = sorted(directory.glob("*.tsv"))
    if not files:
        raise ExamplesError(f"{directory}: no <lang>.tsv files")
    for path in files:
        examples.extend(read_file(path, path.stem, f"{directory.name}/{path.name}")[1])
    return examples


def first_contact(examples: Sequence[Example], model_path: Path | None = None, rules: bool = True
                  ) -> tuple[dict[str, Tally], dict[str, Tally], Tally]:
    """The shipped model (and the phrase rules, and the two together) on examples it never saw."""
    from ..understanding.model import Model
    from ..understanding.understander import rule_stands

    model = Model.load(model_path)
    understander = None
    if rules:
        from ..catalog import Catalog
        from ..understanding import Understander

        understander = Understander(Catalog.load())
    rows = []
    for example in examples:
        scores = model.score(example.text)
        flagged = scores.crisis >= model.crisis_threshold
        topic = decided_topic(scores.topic, scores.topics[scores.topic], model.topic_floor)
        others = None
        if understander is not None:
            rule = understander.crisis_by_rules(example.text)
            by_rules = rule is not None and rule_stands(rule.circumstantial, scores.crisis)
            others = {"rules": by_rules, "rules|model": by_rules or flagged}
        rows.append((example, flagged, topic, others))
    return tallies(rows)
