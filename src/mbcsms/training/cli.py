"""``mbcsms model``: train the understanding model from the examples, and measure it.

scikit-learn and scipy (the ``train`` extra) are imported inside the commands only, so the bot
and ``mbcsms reply`` never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .train import OutOfFold


@click.group()
def model() -> None:
    """The learned crisis and topic classifiers (the 'train' extra: pip install '.[train]')."""


def _progress(message: str) -> None:
    click.echo(message, err=True)


@model.command()
@click.option("--locales", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding <lang>/examples/*.tsv (default: the repository's locales).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Weights file to write (default: the package's weights/model.npz).")
def train(locales: Path | None, out: Path | None) -> None:
    """Rebuild the weights from every examples file (deterministic on the pinned versions)."""
    from .examples import ExamplesError
    from .train import save
    from .train import train as run

    try:
        fitted, meta, oof = run(locales, _progress)
    except ExamplesError as error:
        raise click.ClickException(str(error)) from None
    path = save(fitted, meta, out)
    # The out-of-fold scores the thresholds were chosen on are `evaluate`'s figures: say them.
    _report(oof, float(meta["crisis_threshold"]), float(meta["topic_floor"]))  # type: ignore[arg-type]
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {meta['examples']} examples, "
               f"{len(fitted.keys)} features, crisis_threshold {meta['crisis_threshold']}, "
               f"topic_floor {meta['topic_floor']}, examples_hash {str(meta['examples_hash'])[:12]}")


@model.command()
@click.option("--locales", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding <lang>/examples/*.tsv (default: the repository's locales).")
@click.option("--on", "new_sets", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="Instead: first contact of the shipped model with a new set's directory of <lang>.tsv files.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Weights to measure with --on (default: the shipped ones).")
def evaluate(locales: Path | None, new_sets: tuple[Path, ...], model_path: Path | None) -> None:
    """Leave-one-set-out crisis recall, false alarms and topic accuracy per set and language,
    and the operating thresholds; or, with --on, the shipped model on sets it never saw."""
    from .evaluate import first_contact, read_set_dir, report
    from .examples import ExamplesError, load_examples

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
        from .train import Encoded, operating_points, out_of_fold

        examples = load_examples(locales)
        click.echo(f"leave one set out: {len(examples)} examples in "
                   f"{len({e.set for e in examples})} sets", err=True)
        oof = out_of_fold(Encoded.of(examples), _progress)
    except ExamplesError as error:
        raise click.ClickException(str(error)) from None
    _report(oof, *operating_points(oof))


def _report(oof: OutOfFold, threshold: float, floor: float) -> None:
    from .evaluate import decided_topic, report, tallies

    rows = [(e, bool(c >= threshold), decided_topic(t, p, floor), None)
            for e, c, t, p in zip(oof.examples, oof.crisis, oof.topic, oof.topic_confidence, strict=True)]
    click.echo("leave one set out (each set scored by models trained on the others):")
    click.echo("\n".join(report(*tallies(rows))))
    click.echo(f"operating points (chosen on these out-of-fold scores): crisis_threshold {threshold:.4f}, "
               f"topic_floor {floor}")
