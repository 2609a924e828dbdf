"""The runbooks cannot rot: every `mm` command they name exists with the options they give it, and those that can run
on a fresh embedded platform do run, with their placeholders (PERIOD, FILE) filled in."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from mm_pipelines.cli import app

pytestmark = pytest.mark.e2e

RUNBOOKS = sorted((Path(__file__).parents[2] / "docs" / "runbooks").glob("*.md"))
# What a placeholder stands for when the command is run; a command with any other placeholder is only resolved.
EXAMPLES = {"PERIOD": "2026-11", "FILE": "docs/examples/royalty_catalog.yml"}
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]+")


def named_commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line, words after `mm`) of every `mm …` in a code span or at the start of a code block line."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        spans = re.findall(r"`(mm [^`]+)`", line) or ([line.strip()] if line.strip().startswith("mm ") else [])
        found += [(number, shlex.split(span)[1:]) for span in spans]
    return found


def resolve(words: list[str]):
    """The command the words name and the arguments left; AssertionError saying what does not exist."""
    command = typer.main.get_command(app)
    rest = list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        assert rest[0] in command.commands, f"`mm … {rest[0]}` is not a command (`mm {' '.join(words)}`)"
        command, rest = command.commands[rest[0]], rest[1:]
    assert not hasattr(command, "commands"), f"`mm {' '.join(words)}` names a group, not a command"
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for word in rest:
        option = word.split("=")[0]
        assert not option.startswith("-") or option in options, f"`mm {' '.join(words)}`: no option {option}"
    return command, rest


CASES = [(path, line, words) for path in RUNBOOKS for line, words in named_commands(path)]


def test_the_runbooks_name_commands_at_all():
    assert RUNBOOKS and len(CASES) >= 5  # a parser that found nothing would pass everything below


@pytest.mark.parametrize(("path", "line", "words"), CASES, ids=lambda v: v.name if isinstance(v, Path) else None)
def test_every_named_command_exists_with_its_options(path, line, words):
    try:
        resolve(words)
    except AssertionError as e:
        raise AssertionError(f"{path.name}:{line}: {e}") from None


def test_a_command_or_option_that_does_not_exist_is_caught():
    with pytest.raises(AssertionError, match="not a command"):
        resolve(["audit", "repair"])
    with pytest.raises(AssertionError, match="no option --force"):
        resolve(["audit", "verify", "--force"])
    with pytest.raises(AssertionError, match="names a group"):
        resolve(["payouts"])


def runnable(words: list[str]) -> list[str] | None:
    """The words with their placeholders filled in, or None: a server (`mm api`), a placeholder with no example
    (a batch id, say), a required argument left out, or a command that does not resolve (reported above)."""
    if words[:1] == ["api"] or any(PLACEHOLDER.fullmatch(w) and w not in EXAMPLES for w in words):
        return None
    filled = [EXAMPLES.get(w, w) for w in words]
    try:
        command, rest = resolve(filled)
    except AssertionError:
        return None
    required = [p for p in command.params if p.required and not p.opts[0].startswith("-")]
    given = [w for w in rest if not w.startswith("-")]
    return filled if len(given) >= len(required) else None


RUNS = sorted({tuple(filled) for _, _, words in CASES if (filled := runnable(words))})


@pytest.mark.parametrize("words", RUNS, ids=" ".join)
def test_every_command_that_can_run_on_a_fresh_platform_runs(mm, words):
    result = mm(*words, check=False)
    assert result.returncode == 0, f"mm {' '.join(words)} exited {result.returncode}: {result.stderr[-2000:]}"
