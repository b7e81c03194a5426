"""make test's scheduling (tests/conftest.py): under ``--dist loadgroup`` a module that builds a fixture once for
all its tests runs on one worker; every other test goes to whichever worker is free."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import _shares_a_module_fixture

ROOT = Path(__file__).resolve().parents[2]


def test_a_module_with_a_module_fixture_is_one_group_and_the_others_are_spread() -> None:
    assert _shares_a_module_fixture(ROOT / "tests/cli/test_stepdeploy_command.py")  # its tests share one world
    assert _shares_a_module_fixture(ROOT / "tests/workflow/test_fault_matrix.py")
    assert not _shares_a_module_fixture(ROOT / "tests/workflow/test_stack_blue_green.py")  # a world per test
