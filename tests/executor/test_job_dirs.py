"""A job's directories (executor/runtimes/base.py ``JobDirs``): made, and emptied for the next job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from executor.runtimes.base import JobDirs

MADE = ["output", "scratch", "tmp", "volume"]


@pytest.fixture
def dirs(tmp_path: Path) -> JobDirs:
    return JobDirs.create(tmp_path / "job")


def names(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir())


def test_made_private_to_the_executors_user(dirs: JobDirs) -> None:
    assert names(dirs.root) == MADE
    for path in (dirs.volume, dirs.output, dirs.tmp, dirs.scratch):
        assert path.stat().st_mode & 0o777 == 0o700


def test_reset_empties_everything_a_job_left_and_keeps_the_directories(dirs: JobDirs, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("not the job's")
    (dirs.output / "result.txt").write_text("1")
    (dirs.volume / "nested" / "deeper").mkdir(parents=True)
    (dirs.volume / "nested" / "deeper" / "input").write_text("2")
    (dirs.tmp / "link").symlink_to(outside)
    (dirs.scratch / "partial").write_bytes(b"3")
    dirs.stdout.write_text("hello")
    (dirs.root / ".cache" / "x").mkdir(parents=True)  # HOME is the job's directory
    (dirs.root / "dangling").symlink_to(tmp_path / "nowhere")
    root_inode = dirs.root.stat().st_ino
    assert dirs.reset() is True
    assert names(dirs.root) == MADE
    assert all(names(dirs.root / name) == [] for name in MADE)
    assert dirs.root.stat().st_ino == root_inode, "the same directory, not a new one"
    assert (outside / "keep").read_text() == "not the job's", "a link was followed"
    assert dirs.reset() is True  # nothing in them: nothing to do


def test_a_directory_the_job_removed_is_not_reset(dirs: JobDirs) -> None:
    dirs.tmp.rmdir()
    assert dirs.reset() is False


def test_a_directory_replaced_by_a_link_is_not_reset_and_its_target_is_left_alone(
    dirs: JobDirs, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious").write_text("x")
    dirs.output.rmdir()
    dirs.output.symlink_to(target)
    assert dirs.reset() is False
    assert names(target) == ["precious"]


@pytest.mark.parametrize("which", ["root", "output", "volume"])
def test_a_directory_opened_to_others_is_not_reset(dirs: JobDirs, which: str) -> None:
    (dirs.root if which == "root" else dirs.root / which).chmod(0o755)
    assert dirs.reset() is False


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")
def test_a_directory_handed_to_another_user_is_not_reset(dirs: JobDirs) -> None:
    os.chown(dirs.output, 65534, 65534)  # as the docker runtime does for its job's user
    assert dirs.reset() is False
