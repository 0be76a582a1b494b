"""``mbcsms translations``: the catalog commands helpline staff run (being built, issue 4)."""

from __future__ import annotations

import click


@click.group()
def translations() -> None:
    """Extract, update, compile, check and preview the translation catalogs."""
