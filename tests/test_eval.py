"""Labelled patient messages scored through `mbcsms reply --json`, as acceptance scores them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import HELPLINE

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared"
DEV = SHARED / "eval" / "dev.jsonl"
SCORER = SHARED / "tools" / "score_eval.py"
DATA = HERE / "data"
INDEPENDENT = sorted(DATA.glob("*_messages.jsonl"))


def mbcsms_executable() -> str:
    beside_python = Path(sys.executable).parent / "mbcsms"
    return str(beside_python) if beside_python.exists() else (shutil.which("mbcsms") or "mbcsms")


def score(path: Path) -> tuple[float, float, list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    stdin = "".join(row["text"].replace("\n", " ") + "\n" for row in rows)
    run = subprocess.run([mbcsms_executable(), "reply", "--json"], input=stdin, capture_output=True,
                         text=True, timeout=120, check=True)
    replies = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(replies) == len(rows)
    topic_ok = lang_ok = lang_n = 0
    problems = []
    for row, reply in zip(rows, replies, strict=True):
        if reply["topic"] in row["topics"]:
            topic_ok += 1
        else:
            problems.append(f"topic {row['text']!r}: want {row['topics']} got {reply['topic']}")
        if row["lang"]:
            lang_n += 1
            if reply["lang"] == row["lang"]:
                lang_ok += 1
            else:
                problems.append(f"lang {row['text']!r}: want {row['lang']} got {reply['lang']}")
        body = reply["body"] or ""
        assert reply["segments"] <= 4, row["text"]
        if reply["topic"] == "fallback":
            assert HELPLINE in body, row["text"]
        if reply["topic"] == "crisis":
            assert "911" in body and "988" in body, row["text"]
    return topic_ok / len(rows), lang_ok / max(lang_n, 1), problems


@pytest.mark.parametrize("path", [DEV, *INDEPENDENT], ids=["dev", *(path.stem for path in INDEPENDENT)])
def test_labelled_messages_score_above_the_bar(path):
    if not path.exists():
        pytest.skip(f"{path} is not here (shared/ sits beside the repo in CI)")
    topic, lang, problems = score(path)
    assert topic >= 0.95 and lang >= 0.97, "\n".join(problems)


def test_the_shared_scorer_passes_on_dev():
    if not SCORER.exists():
        pytest.skip("shared/tools/score_eval.py is not beside the repo")
    run = subprocess.run([sys.executable, str(SCORER), mbcsms_executable(), str(DEV), "0.95", "0.97"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
