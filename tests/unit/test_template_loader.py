"""The local world's template loader: parsed once per file version, a copy of its own for each caller."""

from __future__ import annotations

from pathlib import Path

from stepdeploy_local import template


def test_each_load_is_a_copy_and_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("Resources:\n  A:\n    Type: X\n    Properties: {Name: !Ref B}\n")
    first = template.load(path)
    first["Resources"]["A"]["Properties"]["Name"] = "changed by a caller"
    assert template.load(path)["Resources"]["A"]["Properties"] == {"Name": {"Ref": "B"}}
    path.write_text("Resources:\n  A:\n    Type: Y\n")
    assert template.load(path)["Resources"]["A"] == {"Type": "Y"}
