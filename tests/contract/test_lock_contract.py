"""Contract: the install locks (requirements/*.lock) agree with the pins they are made from.

`make demo` and `make test` install only from the locks, so a pin changed in requirements-dev.txt,
layers/common/requirements.txt or requirements/*.in without `make lock` would silently not be installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
LOCKS = ("bootstrap", "demo", "test", "scan")
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def _lock(name: str) -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of sha256 hashes)} of requirements/<name>.lock."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (REQ / f"{name}.lock").read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            current = canonicalize_name(match["name"])
            entries[current] = (match["version"], 0)
        elif current and HASH.search(line):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def _requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (comments, blank lines and -r includes left out)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for req in _requirements(path):
        [spec] = req.specifier
        assert spec.operator == "==", f"{path.name}: {req} is not pinned exactly"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


@pytest.mark.parametrize("source", ["requirements-dev.txt", "layers/common/requirements.txt"])
def test_every_pin_is_locked_at_its_version(source: str) -> None:
    locked = _lock("test")
    stale = {
        name: (version, locked.get(name, ("missing", 0))[0])
        for name, version in _pins(ROOT / source).items()
        if locked.get(name, ("missing", 0))[0] != version
    }
    assert not stale, f"{source} pins (pinned, locked) {stale}: run `make lock`"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_input_is_locked(lock: str) -> None:
    locked, source = _lock(lock), f"{lock}.in"
    missing = [str(req) for req in _requirements(REQ / source) if canonicalize_name(req.name) not in locked]
    assert not missing, f"requirements/{source} asks for {missing}, not in {lock}.lock: run `make lock`"
    for req in _requirements(REQ / source):
        assert req.specifier.contains(locked[canonicalize_name(req.name)][0]), f"{req} vs {lock}.lock: run `make lock`"


def test_the_demo_set_is_part_of_the_test_set_at_the_same_versions() -> None:
    demo, test = _lock("demo"), _lock("test")
    assert "moto" in demo
    differ = {name: (demo[name][0], test.get(name, ("missing", 0))[0]) for name in demo if test.get(name) != demo[name]}
    assert not differ, f"demo.lock vs test.lock (demo, test) {differ}: run `make lock`"


def test_the_demo_set_leaves_out_the_tooling() -> None:
    demo = _lock("demo")
    assert not {"aws-sam-cli", "mypy", "ruff", "pytest", "boto3-stubs"} & demo.keys()


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_has_its_hashes(lock: str) -> None:
    entries = _lock(lock)
    assert entries
    unhashed = sorted(name for name, (_, hashes) in entries.items() if hashes == 0)
    assert not unhashed, f"{lock}.lock has no sha256 for {unhashed}: run `make lock`"
