"""grid/cli/transfers.py: ``--input SRC[:DEST]`` read as the user meant it, mistakes said before any upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from grid.cli.errors import CliError
from grid.cli.transfers import InputArg, parse_input


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "odd:name").write_text("a colon in a file name")


def test_a_local_file_or_directory_keeps_its_name_or_takes_dest() -> None:
    assert parse_input("data.csv") == InputArg("data.csv", "data.csv")
    assert parse_input("data.csv:in/table.csv") == InputArg("data.csv", "in/table.csv")
    assert parse_input("dir").is_dir and parse_input("dir:d").dest == "d"
    assert parse_input(".").dest == Path.cwd().name


def test_a_path_that_exists_with_a_colon_is_taken_whole() -> None:
    assert parse_input("odd:name") == InputArg("odd:name", "odd:name")


def test_a_store_object_is_named_by_its_key() -> None:
    assert parse_input("store:uploads/k/1/data.csv") == InputArg("uploads/k/1/data.csv", "data.csv", in_store=True)
    assert parse_input("store:uploads/k/1/data.csv:in/d.csv").dest == "in/d.csv"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing.csv", "--input missing.csv: no such file or directory 'missing.csv'"),
        ("data.csv:../escape", "--input data.csv:../escape: '../escape' must be a relative path in the job"),
        ("data.csv:/abs", "'/abs' must be a relative path in the job"),
        ("store:", "--input store:: give the object's key"),
    ],
)
def test_mistakes_are_usage_errors(value: str, message: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_input(value)
    assert message in caught.value.message and caught.value.code == 2
