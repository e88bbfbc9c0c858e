"""Every ``govledger`` command documents itself: an example in its ``--help`` that parses.

The parser tree is walked from :func:`client.cli.build_parser`, so a command added later
without an example fails here.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from client.cli import build_parser

SPEC_COMMANDS = {  # SPEC §8 "Client", plus org and import
    "status": set(),
    "keys": set(),
    "cert": {"issue", "suspend", "reinstate", "revoke", "renew", "show", "proof", "verify"},
    "fund": {"appropriate", "allocate", "pay", "return", "trail", "balance"},
    "audit": {"alerts", "verify-chain", "access-log"},
    "gov": {"propose", "vote", "show"},
    "org": set(),
    "import": {"certs", "flows"},
}
GLOBAL_WITH_VALUE = {"--node", "--key"}


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.update(action.choices)
    return out


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for name, child in _children(parser).items():
        yield from walk(child, (*path, name))


ALL = list(walk(build_parser()))
COMMANDS = [(p, parser) for p, parser in ALL if p]
LEAVES = [(p, parser) for p, parser in COMMANDS if not _children(parser)]


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The ``govledger …`` command lines of a parser's epilog (continuations joined, shell
    pipes and redirections cut off)."""
    text = (parser.epilog or "").replace("\\\n", " ")
    lines = []
    for raw in text.splitlines():
        match = re.search(r"(?:^|\s|:)(govledger\s.*)$", raw)
        if match:
            lines.append(re.split(r"\s(?:\||&&|>)\s", match.group(1))[0])
    return lines


def test_spec_commands_are_all_there() -> None:
    """Goal: every verb and sub-command SPEC §8 names (and org, import) exists.
    Method: compare the parser tree with the list."""
    tree = {p[0]: set(_children(parser)) for p, parser in COMMANDS if len(p) == 1}
    for verb, subs in SPEC_COMMANDS.items():
        assert verb in tree, f"govledger {verb} is missing"
        assert subs <= tree[verb], f"govledger {verb} lacks {sorted(subs - tree[verb])}"


@pytest.mark.parametrize("path", [" ".join(p) or "govledger" for p, _ in ALL])
def test_every_command_has_an_example(path: str) -> None:
    """Goal: `--help` of every command and sub-command ends with at least one example that
    runs that very command. Method: read each parser's epilog; an example names the
    command's words in order after `govledger` and its global options."""
    parser = dict((" ".join(p) or "govledger", q) for p, q in ALL)[path]
    found = examples(parser)
    assert found and "example" in (parser.epilog or "").lower(), \
        f"`govledger {path} --help` shows no example"
    words = [] if path == "govledger" else path.split()
    for line in found:
        assert _command_words(shlex.split(line)[1:])[:len(words)] == words, (path, line)


def _command_words(tokens: list[str]) -> list[str]:
    """The tokens after the global options (--node URL, --json, --key K)."""
    i = 0
    while i < len(tokens) and tokens[i].startswith("--"):
        i += 2 if tokens[i] in GLOBAL_WITH_VALUE else 1
    return tokens[i:]


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in LEAVES])
def test_leaf_examples_parse(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: each leaf command's examples are valid command lines, not just text.
    Method: parse every example with a fresh parser; argparse exits on any error, which
    fails the test with its message."""
    parser = dict((" ".join(p), q) for p, q in LEAVES)[path]
    for line in examples(parser):
        try:
            args = build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"example of `govledger {path}` does not parse: {line}\n"
                        f"{capsys.readouterr().err}")
        assert hasattr(args, "handler"), line


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in LEAVES])
def test_every_leaf_takes_json_and_keeps_line_breaks(path: str) -> None:
    """Goal: SPEC §8 "--json on every command", also after the command; help texts keep
    their line breaks (one example per line). Method: look for the option on each leaf and
    render its help."""
    parser = dict((" ".join(p), q) for p, q in LEAVES)[path]
    assert any("--json" in a.option_strings for a in parser._actions), path
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    epilog = parser.epilog or ""
    assert epilog.strip() in parser.format_help()


def test_the_walk_sees_the_whole_tree() -> None:
    """Goal: the walk reaches every level, so the tests above are not vacuous. Method:
    count leaves and check a few known ones."""
    leaves = {" ".join(p) for p, _ in LEAVES}
    assert {"status", "cert issue", "fund pay", "audit verify-chain", "gov propose",
            "import certs", "import flows", "keys new", "org show"} <= leaves
    assert len(leaves) >= 35


def test_both_commands_say_which_release_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    """Goal: `govledger --version` and `python node.py --version` print the release
    pyproject.toml declares, as operators compare it across departments' nodes (which also
    report it in /v1/status). Method: run both parsers; compare with pyproject.toml."""
    import tomllib
    from pathlib import Path

    import node

    root = Path(__file__).resolve().parents[2]
    release = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    for run in (lambda: build_parser().parse_args(["--version"]),
                lambda: node.main(["--version"])):
        with pytest.raises(SystemExit) as exc:
            run()
        assert exc.value.code == 0
        assert capsys.readouterr().out.strip() == f"govledger {release}"
