"""A Babel extractor for the English content file, so ``pybabel extract`` builds messages.pot.

It yields answers and menu titles only: keyword lists are plain files, not translations.

Registered as the ``mbcsms_content`` extraction method (see ``babel.cfg``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..catalog import load_source, source_entries


def _line_numbers(text: str) -> dict[str, int]:
    """The line where each topic starts, for translators' references."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r'\s*id\s*=\s*"([^"]+)"', line)
        if match:
            lines[match.group(1)] = number
    return lines


def extract(
    fileobj: IO[bytes],
    keywords: Collection[str],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[int, str, tuple[str, str], list[str]]]:
    path = Path(getattr(fileobj, "name", "topics.toml"))
    text = fileobj.read().decode("utf-8")
    source = load_source(path)
    lines = _line_numbers(text)
    for entry in source_entries(source):
        _, _, name = entry.context.partition(":")
        line = lines.get(name, 0)
        yield line, "pgettext", (entry.context, entry.msgid), [entry.comment]
