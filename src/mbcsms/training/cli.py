"""``mbcsms model``: train the understanding model from the examples, and measure it.

scikit-learn and scipy (the ``train`` extra) are imported inside the commands only, so the bot
and ``mbcsms reply`` never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .train import OperatingPoints, OutOfFold


@click.group()
def model() -> None:
    """The learned crisis and topic classifiers (the 'train' extra: pip install '.[train]')."""


# Both commands can keep the out-of-fold scores (train.cached_out_of_fold).
oof_cache_option = click.option(
    "--oof-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Keep the out-of-fold scores in this file and reuse them while the examples are unchanged.")


def _progress(message: str) -> None:
    click.echo(message, err=True)


@model.command()
@click.option("--locales", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding <lang>/examples/*.tsv (default: the repository's locales).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Weights file to write (default: the package's weights/model.npz).")
@oof_cache_option
def train(locales: Path | None, out: Path | None, oof_cache: Path | None) -> None:
    """Rebuild the weights from every examples file (deterministic on the pinned versions)."""
    from .examples import ExamplesError
    from .train import save
    from .train import train as run

    try:
        fitted, meta, oof = run(locales, _progress, oof_cache)
    except ExamplesError as error:
        raise click.ClickException(str(error)) from None
    path = save(fitted, meta, out)
    # The out-of-fold scores the thresholds were chosen on are `evaluate`'s figures: say them.
    from .train import OperatingPoints

    _report(oof, OperatingPoints(float(meta["crisis_threshold"]), float(meta["topic_floor"]),  # type: ignore[arg-type]
                                 float(meta["topic_high"]), float(meta["feeling_bar"]),  # type: ignore[arg-type]
                                 dict(meta["oof_recall"])))  # type: ignore[call-overload]
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {meta['examples']} examples, "
               f"{len(fitted.keys)} features, crisis_threshold {meta['crisis_threshold']}, "
               f"topic_floor {meta['topic_floor']}, topic_high {meta['topic_high']}, "
               f"feeling_bar {meta['feeling_bar']}, examples_hash {str(meta['examples_hash'])[:12]}")


@model.command()
@click.option("--locales", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding <lang>/examples/*.tsv (default: the repository's locales).")
@click.option("--on", "new_sets", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="Instead: first contact of the shipped model with a new set's directory of <lang>.tsv files.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Weights to measure with --on (default: the shipped ones).")
@oof_cache_option
def evaluate(locales: Path | None, new_sets: tuple[Path, ...], model_path: Path | None,
             oof_cache: Path | None) -> None:
    """Leave-one-set-out crisis recall, false alarms and topic accuracy per set and language,
    and the operating thresholds; or, with --on, the shipped model on sets it never saw."""
    from .evaluate import first_contact, read_set_dir, report
    from .examples import ExamplesError, load_examples_hashed

    try:
        if new_sets:
            from ..understanding.model import Model

            shipped = Model.load(model_path)
            click.echo(f"first contact: crisis_threshold {shipped.crisis_threshold}, "
                       f"topic_floor {shipped.topic_floor}")
            for directory in new_sets:
                click.echo(f"{directory.name}:")
                click.echo("\n".join(report(*first_contact(read_set_dir(directory), model_path))))
            return
        from .train import Encoded, cached_out_of_fold, operating_points

        examples, corpus_hash = load_examples_hashed(locales)
        click.echo(f"leave one set out: {len(examples)} examples in "
                   f"{len({e.set for e in examples})} sets", err=True)
        oof = cached_out_of_fold(Encoded.of(examples), corpus_hash, _progress, oof_cache)
    except ExamplesError as error:
        raise click.ClickException(str(error)) from None
    _report(oof, operating_points(oof))


def _report(oof: OutOfFold, points: OperatingPoints) -> None:
    """Out-of-fold figures of the decision rule as the bot runs it: crisis = a phrase rule OR the
    model at its threshold; topic = decide_topic of the rules' and the model's topic. The model
    alone is shown beside it (a phrase rule's catch on a seed set it was written from is not
    fresh: those sets are marked * and their combined figures flatter the rules)."""
    import numpy as np

    from ..understanding import decide_topic
    from .evaluate import report, tallies
    from .train import (
        CRISIS_SET_SHARE,
        MAX_FALSE_ALARMS,
        MIN_RECALL,
        MIN_RECALL_LANG,
        RuleReadings,
        confusable,
        model_crisis_scores,
        model_topic,
        rules_fresh,
    )

    rules = RuleReadings.of(oof.examples).given(oof.crisis)
    scores = model_crisis_scores(oof, rules)
    rows = []
    for i, e in enumerate(oof.examples):
        by_model = bool(scores[i] >= points.crisis_threshold)
        flagged = bool(rules.crisis[i]) or by_model
        topic = decide_topic(rules.topic[i], oof.topic[i], float(oof.topic_confidence[i]),
                             points.topic_high, points.topic_floor)
        # Tallies compare with the example's label: the bot's None is the fallback.
        label = (e.topic if e.topic and model_topic(e.topic) == topic
                 else ("out_of_scope" if topic is None else topic))
        rows.append((e, flagged, label, {"model alone": by_model}))
    click.echo("leave one set out (each set scored by models trained on the others), "
               "rules OR model; topic by the decision rule:")
    lines = report(*tallies(rows))
    seed = {e.set for e in oof.examples if not rules_fresh(e.set)}
    click.echo("\n".join(f"{line} *" if line.split()[:1] and line.split()[0] in seed else line for line in lines))
    click.echo("  * seed set the phrase lists were written from")
    counted = confusable(oof.examples)
    alarmed = rules.crisis | (scores >= points.crisis_threshold)
    langs = np.array([e.lang for e in oof.examples])
    shares = [f"{name} {100 * alarmed[group].mean():.1f}% ({int(alarmed[group].sum())}/{int(group.sum())})"
              for name, group in [("all", counted)] + [(lang, counted & (langs == lang)) for lang in sorted(set(langs))]
              if group.any()]
    click.echo(f"false alarms on the confusables (ordinary messages of sets at least {CRISIS_SET_SHARE:.0%} "
               f"crises): {', '.join(shares)}")
    click.echo(f"crisis threshold rule: the lowest threshold at which rules OR model raise out-of-fold false "
               f"alarms on at most {MAX_FALSE_ALARMS:.0%} of the confusables, overall and in each language "
               f"(the most recall within the false-alarm bar)")
    recall = ", ".join(f"{lang} {100 * value:.1f}%" for lang, value in points.recall.items())
    short = [lang for lang, value in points.recall.items()
             if value < (MIN_RECALL if lang == "all" else MIN_RECALL_LANG)]
    click.echo(f"  out-of-fold recall there (rules counted on fresh sets only): {recall}"
               + (f"; BELOW the {MIN_RECALL:.0%} overall / {MIN_RECALL_LANG:.0%} per-language goal: {', '.join(short)}"
                  if short else f"; meets the {MIN_RECALL:.0%} overall / {MIN_RECALL_LANG:.0%} per-language goal"))
    click.echo(f"operating points (chosen on these out-of-fold scores): crisis_threshold "
               f"{points.crisis_threshold:.4f}, topic_floor {points.topic_floor}, topic_high "
               f"{points.topic_high}, feeling_bar {points.feeling_bar}")
