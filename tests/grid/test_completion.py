"""``grid completion bash|zsh`` (grid/cli/completion.py): the script, run by a real bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from grid.cli import build_parser, main
from grid.cli.completion import bash_script

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "grid.bash"
    path.write_text(bash_script(build_parser()))
    return path


def test_completion_bash_prints_the_script(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == script.read_text()


def complete(script: Path, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end), through the function the script registers."""
    words = line.split(" ")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
        "_grid_complete; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    done = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=10, check=True)
    return [word for word in done.stdout.splitlines() if word]


def test_completes_commands_then_subcommands_then_their_options(script: Path) -> None:
    assert complete(script, "grid jo") == ["job"]
    assert complete(script, "grid job ") == [
        "-h",
        "--help",
        "run",
        "call",
        "status",
        "list",
        "logs",
        "download",
        "cancel",
    ]
    assert complete(script, "grid job run --str") == ["--streaming"]
    assert complete(script, "grid job run --env A=1 --de") == ["--detach"]  # an option's value is skipped


def test_completes_the_choices_of_an_option(script: Path) -> None:
    assert complete(script, "grid job list --status fa") == ["failed"]
    assert complete(script, "grid registry add x --role ") == ["miner", "validator"]


def test_after_the_double_dash_it_offers_nothing_of_its_own(script: Path) -> None:
    assert complete(script, "grid job run -- ec") == []


def test_zsh_gets_the_same_function_through_bashcompinit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n")
    assert out.rstrip().endswith("complete -o default -F _grid_complete grid")
