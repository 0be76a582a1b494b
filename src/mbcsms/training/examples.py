"""The labelled example messages the model learns from: ``locales/<lang>/examples/<set>.tsv``.

Each file starts with comment lines naming its set, writer, style and date, then one example a
line, ``label<TAB>message``::

    # set: w2_emergency
    # writer: a nurse writing as caregivers
    # style: phone-typed, caregivers
    # date: 2026-11-29
    crisis	she cant feel her legs and wet herself
    out_of_scope	is kisqali a chemo

A set may have a file in several languages; the set, not the file, is the unit that evaluation
holds out. The corpus hash covers every file's path (relative to the locales directory) and
bytes, so the shipped model can tell when it was trained on other examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CRISIS = "crisis"
NOT_CRISIS = "not_crisis"  # not a crisis, topic unknown: trains the crisis model only
OUT_OF_SCOPE = "out_of_scope"
TOPICS = ("about", "spread", "stats", "recurrence", "cure", "treatment", "survival", "her2",
          "support", "helpline")
SMALL_TALK = ("thanks", "ack", "goodbye", "greeting", "human_check")
FEELINGS = "feelings"
# Every label the topic model can learn, in a fixed order.
TOPIC_LABELS = (*TOPICS, OUT_OF_SCOPE, *SMALL_TALK, FEELINGS)
LABELS = frozenset((CRISIS, NOT_CRISIS, *TOPIC_LABELS))
HEADER_FIELDS = ("set", "writer", "style", "date")


class ExamplesError(ValueError):
    """A malformed examples file, with the file and line."""


@dataclass(frozen=True)
class Example:
    label: str
    text: str
    set: str
    lang: str
    source: str  # "en/examples/w2_emergency.tsv:17"

    @property
    def crisis(self) -> bool:
        return self.label == CRISIS

    @property
    def topic(self) -> str | None:
        """The topic model's label, or None when the example trains the crisis model only."""
        return self.label if self.label in TOPIC_LABELS else None


def repo_locales_dir() -> Path:
    """The ``locales`` directory the bot itself reads: the copy shipped in the package when it
    is installed (as CI and the PaaS install it), the repository's in a source checkout."""
    from ..catalog import default_locales_dir

    return default_locales_dir()


def example_files(locales: Path | None = None) -> list[Path]:
    locales = locales or repo_locales_dir()
    return sorted(locales.glob("*/examples/*.tsv"), key=lambda p: p.relative_to(locales).as_posix())


def read_file(path: Path, lang: str, name: str) -> tuple[dict[str, str], list[Example]]:
    """One examples file: its header fields and its examples. Raises ExamplesError naming
    ``name:line`` for a line that is not ``label<TAB>message`` with a known label."""
    return parse_file(path.read_bytes(), path, lang, name)


def parse_file(content: bytes, path: Path, lang: str, name: str) -> tuple[dict[str, str], list[Example]]:
    """:func:`read_file` on the file's bytes, already read."""
    header: dict[str, str] = {}
    examples: list[Example] = []
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExamplesError(f"{name}: not UTF-8 ({error})") from None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() in HEADER_FIELDS:
                header[key.strip()] = value.strip()
            continue
        label, sep, message = line.partition("\t")
        if not sep:
            raise ExamplesError(f"{where}: expected 'label<TAB>message', found no tab: {line[:60]!r}")
        if "\t" in message:
            raise ExamplesError(f"{where}: a tab inside the message (one tab only, after the label)")
        label = label.strip()
        if label not in LABELS:
            raise ExamplesError(f"{where}: unknown label {label!r} (known: {', '.join(sorted(LABELS))})")
        if not message.strip():
            raise ExamplesError(f"{where}: empty message")
        examples.append(Example(label, message.strip(), header.get("set", path.stem), lang, where))
    if "set" not in header:
        raise ExamplesError(f"{name}: no '# set: NAME' header line")
    return header, examples


def load_examples(locales: Path | None = None) -> list[Example]:
    """Every example under ``locales/*/examples/*.tsv``, in a fixed order (file path, line)."""
    return load_examples_hashed(locales)[0]


def load_examples_hashed(locales: Path | None = None) -> tuple[list[Example], str]:
    """``load_examples`` and the ``examples_hash`` of the very bytes parsed, each file read once:
    a model records the hash of the examples it learned from, whatever is edited meanwhile."""
    locales = locales or repo_locales_dir()
    digest = hashlib.sha256()
    examples: list[Example] = []
    for path, relative, content in _files(locales):
        _hash_file(digest, relative, content)
        examples.extend(parse_file(content, path, relative.split("/")[0], relative)[1])
    return examples, digest.hexdigest()


def examples_hash(locales: Path | None = None) -> str:
    """sha256 over every examples file's path (relative to ``locales``) and bytes, by path."""
    digest = hashlib.sha256()
    for _, relative, content in _files(locales or repo_locales_dir()):
        _hash_file(digest, relative, content)
    return digest.hexdigest()


def _files(locales: Path) -> Iterator[tuple[Path, str, bytes]]:
    for path in example_files(locales):
        yield path, path.relative_to(locales).as_posix(), path.read_bytes()


def _hash_file(digest: hashlib._Hash, relative: str, content: bytes) -> None:
    for part in (relative.encode(), content):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
