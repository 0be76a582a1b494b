"""The dependency lock (requirements.txt, requirements-test.txt) still matches pyproject.toml.

The PaaS build (Heroku's Python buildpack, Render) runs `pip install -r requirements.txt`, and
CI runs `pip install -r requirements-test.txt`: these files, not pyproject.toml, decide what is
installed. When one of these tests fails, run `scripts/lock` and commit the two files.

Offline: reads the files and parses them with `packaging`; nothing is resolved or downloaded.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REFRESH = "run `scripts/lock` and commit requirements.txt and requirements-test.txt"
PROJECT_PARENT = "mbcsms (pyproject.toml)"  # how uv's annotations name pyproject.toml


@dataclass
class Pin:
    name: str
    version: Version
    marker: str  # "" for every environment; else uv's fork ("python_full_version < '3.12'")
    line: str
    via: set[str] = field(default_factory=set)  # annotated parents, as written


@dataclass
class Lock:
    path: Path
    pins: dict[str, list[Pin]]  # one pin per name, or one per environment fork
    project_lines: list[str]  # unnamed requirements: the project itself ("." or ".[test]")

    def via(self, name: str) -> set[str]:
        return set().union(*(pin.via for pin in self.pins[name]))


def parse_lock(path: Path) -> Lock:
    pins: dict[str, list[Pin]] = {}
    project_lines: list[str] = []
    current: Pin | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        if raw[0].isspace() and stripped.startswith("#"):
            # uv's annotations: "# via NAME" or "# via" then "#   NAME" lines.
            text = stripped.lstrip("#").strip()
            if text.startswith("via"):
                text = text[3:].strip()
            if current is not None and text:
                current.via.add(text)
            continue
        current = None
        if stripped.startswith("#"):
            continue
        if stripped.startswith((".", "-e ", "-e.")):
            project_lines.append(stripped)
            continue
        assert not stripped.startswith("-"), (
            f"{path.name}: unexpected option {stripped!r}; {REFRESH}"
        )
        req = Requirement(stripped)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", (
            f"{path.name}: {stripped!r} is not an exact pin; {REFRESH}"
        )
        name = canonicalize_name(req.name)
        marker = str(req.marker) if req.marker else ""
        assert all(pin.marker != marker for pin in pins.get(name, [])), (
            f"{path.name}: {name} pinned twice for the same environment; {REFRESH}"
        )
        current = Pin(name, Version(specs[0].version), marker, stripped)
        pins.setdefault(name, []).append(current)
    return Lock(path, pins, project_lines)


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["project"].get("dependencies", [])]


def extra_test_requirements() -> list[Requirement]:
    extras = pyproject()["project"].get("optional-dependencies", {})
    return [Requirement(r) for r in extras.get("test", [])]


RUNTIME = ROOT / "requirements.txt"
TEST = ROOT / "requirements-test.txt"


def locks() -> list[tuple[Lock, list[Requirement]]]:
    """Each lock file with what pyproject.toml asks it to hold."""
    return [
        (parse_lock(RUNTIME), runtime_requirements()),
        (parse_lock(TEST), runtime_requirements() + extra_test_requirements()),
    ]


def unmet(lock: Lock, wanted: list[Requirement]) -> list[str]:
    """pyproject dependencies the lock does not pin, or pins outside their specifier."""
    problems = []
    for req in wanted:
        pins = lock.pins.get(canonicalize_name(req.name), [])
        if not pins:
            problems.append(f"{req} is not pinned")
        for pin in pins:
            if not req.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{req} but the lock pins {pin.line}")
    return problems


def unasked(lock: Lock, wanted: list[Requirement]) -> list[str]:
    """Pins that pyproject no longer asks for, at top level or below.

    uv annotates each pin with what asked for it ("# via flask", "# via mbcsms (pyproject.toml)").
    A top-level pin (asked for by the project) must be a pyproject dependency. Starting from
    those, a pin is needed if a needed pin asked for it; a pin left over was asked for only by
    something pyproject dropped.
    """
    asked = {canonicalize_name(r.name) for r in wanted}
    top_level = {name for name in lock.pins if PROJECT_PARENT in lock.via(name)}
    problems = [f"{name} pinned for the project" for name in sorted(top_level - asked)]
    needed = asked & set(lock.pins)
    changed = True
    while changed:
        changed = False
        for name in lock.pins:
            if name in needed:
                continue
            parents = {canonicalize_name(p) for p in lock.via(name) if re.fullmatch(r"[\w.-]+", p)}
            if parents & needed:
                needed.add(name)
                changed = True
    orphans = sorted(set(lock.pins) - needed - top_level)
    problems += [f"{name} needed by nothing" for name in orphans]
    return problems


@pytest.mark.parametrize("which", [0, 1], ids=["requirements.txt", "requirements-test.txt"])
def test_every_pyproject_dependency_is_pinned_within_its_specifier(which: int) -> None:
    lock, wanted = locks()[which]
    problems = unmet(lock, wanted)
    assert not problems, f"{lock.path.name}: " + "; ".join(problems) + f"; {REFRESH}"


@pytest.mark.parametrize("which", [0, 1], ids=["requirements.txt", "requirements-test.txt"])
def test_nothing_pinned_that_pyproject_no_longer_asks_for(which: int) -> None:
    lock, wanted = locks()[which]
    problems = unasked(lock, wanted)
    assert not problems, (
        f"{lock.path.name}: " + "; ".join(problems) + f" (pyproject.toml no longer asks); {REFRESH}"
    )


def test_the_locks_install_the_project_itself() -> None:
    """The PaaS build installs only what requirements.txt names: the app must be in it."""
    assert parse_lock(RUNTIME).project_lines == ["."], (
        f"requirements.txt must end with '.'; {REFRESH}"
    )
    assert parse_lock(TEST).project_lines == [".[test]"], (
        f"requirements-test.txt must end with '.[test]'; {REFRESH}"
    )


def test_the_test_lock_holds_exactly_the_runtime_pins() -> None:
    """CI tests the versions that production runs."""
    runtime = parse_lock(RUNTIME).pins
    test = parse_lock(TEST).pins

    def versions(pins: list[Pin]) -> set[tuple[str, str]]:
        return {(str(pin.version), pin.marker) for pin in pins}

    differ = [
        f"{name}: {sorted(versions(pins))} vs {sorted(versions(test.get(name, [])))}"
        for name, pins in runtime.items()
        if versions(pins) != versions(test.get(name, []))
    ]
    assert not differ, f"requirements-test.txt differs from requirements.txt: {differ}; {REFRESH}"


def test_ci_and_the_readme_install_from_the_lock() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -r requirements-test.txt" in ci
    assert "pip install -r requirements-test.txt" in readme
    assert "pip install -r requirements.txt" in readme
    assert "scripts/lock" in readme


def test_the_checks_catch_a_stale_lock(tmp_path: Path) -> None:
    """The checks above really fail on a lock that pyproject.toml has moved away from."""
    stale = tmp_path / "requirements.txt"
    stale.write_text(
        "# header\n"
        "blinker==1.9.0\n    # via flask\n"
        "flask==2.3.0\n    # via mbcsms (pyproject.toml)\n"
        "leftpad==1.0\n    # via mbcsms (pyproject.toml)\n"
        "leftpad-helper==0.1 ; sys_platform == 'win32'\n"
        "    # via\n    #   -c requirements.txt\n    #   leftpad\n"
        "numpy==2.4.6 ; python_full_version < '3.12'\n    # via mbcsms (pyproject.toml)\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n    # via mbcsms (pyproject.toml)\n"
        ".\n    # this project\n",
        encoding="utf-8",
    )
    lock = parse_lock(stale)
    assert lock.project_lines == ["."]
    assert lock.via("leftpad-helper") == {"-c requirements.txt", "leftpad"}
    assert [str(pin.version) for pin in lock.pins["numpy"]] == ["2.4.6", "2.5.5"]
    wanted = [Requirement("Flask>=3.0"), Requirement("textstat==0.7.3"), Requirement("numpy>=2.5")]
    assert unmet(lock, wanted) == [
        "Flask>=3.0 but the lock pins flask==2.3.0",
        "textstat==0.7.3 is not pinned",
        "numpy>=2.5 but the lock pins numpy==2.4.6 ; python_full_version < '3.12'",
    ]
    assert unasked(lock, wanted) == [
        "leftpad pinned for the project",
        "leftpad-helper needed by nothing",
    ]
    fresh = [Requirement("flask>=2.3"), Requirement("leftpad"), Requirement("numpy>=2.4")]
    assert unmet(lock, fresh) == [] and unasked(lock, fresh) == []
