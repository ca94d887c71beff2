"""The docs say what the code does: every `ftsd` command line shown in README.md, docs/ and docstrings uses
commands and flags the parser knows, and the error tree drawn in errors.py is the class tree."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from ftsd import cli, errors

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "ftsd").rglob("*.py")),
             *sorted((ROOT / "contrib").glob("*"))]
# `ftsd COMMAND ...` as shown in code: at the start of a line, after a path, in backticks or after a cron user
_COMMAND_LINE = re.compile(r"(?:^|[\s`/])ftsd((?:\s+-c\s+\S+)?\s+[a-z][a-z-]*\b[^`\n#|]*)")
_FLAG = re.compile(r"^--?[A-Za-z][\w-]*")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def _commands_in_docs() -> list[tuple[str, str]]:
    """(where, command line after `ftsd`) for every ftsd invocation the docs show."""
    found = []
    for path in DOC_FILES:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in _COMMAND_LINE.finditer(line):
                found.append((f"{path.relative_to(ROOT)}:{n}", match.group(1)))
    return found


def test_docs_show_commands_and_flags_that_exist():
    top = cli._parser()
    commands = _subparsers(top)
    problems, seen = [], 0
    for where, text in _commands_in_docs():
        try:
            words = shlex.split(text.replace("...", " "))
        except ValueError:
            words = text.split()
        global_flags = _flags(top)
        while words and words[0].startswith("-"):  # global options before the command (`ftsd -c CONF search`)
            glob = words.pop(0)
            if words and not words[0].startswith("-"):
                words.pop(0)  # its value
            if glob not in global_flags and glob not in {"-c", "--config"}:
                problems.append(f"{where}: unknown global option {glob}")
        if not words or words[0] not in commands:
            continue  # prose ("ftsd indexes the ..."), not a command line
        seen += 1
        known = _flags(commands[words[0]]) | global_flags
        for word in words[1:]:
            option = _FLAG.match(word.strip("[]()"))
            if option and option.group(0) not in known:
                problems.append(f"{where}: `ftsd {words[0]}` has no option {option.group(0)}")
    assert seen > 20, "the pattern no longer finds the command lines of the docs"
    assert not problems, "\n".join(problems)


def _drawn_tree() -> list[tuple[int, str]]:
    """(depth, class name) of each line of the tree drawn in errors.py's docstring."""
    doc = errors.__doc__ or ""
    tree = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*)[*+.-]\s+([A-Z]\w+)", line)
        if match:
            tree.append((len(match.group(1)), match.group(2)))
    return tree


def test_error_tree_in_docstring_is_the_class_tree():
    drawn = _drawn_tree()
    assert drawn and drawn[0][1] == "FtsdError"
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for depth, name in drawn:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    classes = {name: cls for name, cls in vars(errors).items()
               if isinstance(cls, type) and issubclass(cls, errors.FtsdError)}
    assert set(classes) == {name for _, name in drawn}, "classes and drawn tree differ"
    for name, cls in classes.items():
        if name != "FtsdError":
            assert cls.__bases__[0].__name__ == parents[name], f"{name} is drawn under {parents[name]}"


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_docs_link_to_files_that_exist(path: Path):
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"
