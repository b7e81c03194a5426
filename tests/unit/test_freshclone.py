"""tools/freshclone.py (make bench ARGS="--fresh-clone ..."): the clones run as a new user would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import freshclone


def test_a_clone_s_make_gets_none_of_the_bench_s_own_make_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make bench ARGS="--fresh-clone"` exports ARGS to its recipe: the clone's `make demo` took it and failed."""
    for name, value in {"ARGS": "--fresh-clone", "MAKEFLAGS": "-- ARGS=--fresh-clone", "MAKEOVERRIDES": "x"}.items():
        monkeypatch.setenv(name, value)
    env = freshclone.environment(tmp_path, warm_cache=False, installer=None)
    assert not {"ARGS", "MAKEFLAGS", "MAKEOVERRIDES", "VIRTUAL_ENV"} & set(env)
    assert env["UV_CACHE_DIR"].startswith(str(tmp_path))
