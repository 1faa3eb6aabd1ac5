"""gitignore semantics for ``--copy-style all``: ``.gitignore`` and ``.flyteignore`` files
in any directory of the tree, matched with ``pathspec``'s ``GitIgnoreSpec`` (negation,
anchored patterns, ``**``, directory-only patterns).

Precedence is git's: a file's patterns apply to paths relative to its directory; the
deepest file with a matching pattern decides, and within it the last matching pattern
wins. ``.flyteignore`` is read after ``.gitignore`` of the same directory, so it can
re-include (``!pattern``) what ``.gitignore`` there ignores. As in git, nothing under an
ignored directory can be re-included: the walk never enters it.

When the root dir lies inside a git work tree (a monorepo and ``--root-dir services/a``),
the ignore files of the directories above it, up to the work tree's top, apply too, as
they do for git.

Every pattern keeps where it came from (``Rule``: file, line, text), so a decision can be
explained (``IgnoreRules.rule_for``). An ignore file that is not a regular file (a FIFO
named ``.gitignore``) is not read; an invalid pattern is a ``BundleError`` naming the file
and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pathspec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from ..errors import BundleError
from .files import read_regular

IGNORE_FILES = (".gitignore", ".flyteignore")

# pathspec marks the "matched a directory" part of a pattern with this group; it is
# renamed so every pattern of a file can be joined into one quick pre-check regex
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


class Rule(NamedTuple):
    """One ignore pattern and where it is written; ``str`` is ``file:line:pattern``."""

    file: Path
    line: int
    pattern: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.pattern}"


@dataclass(frozen=True)
class _Level:
    """The patterns of one directory's ignore files. A root-relative path is matched
    as ``base + path[len(prefix):]``: ``prefix`` is the directory relative to the root
    (``""`` for the root and above), ``base`` the root relative to a directory above it.
    ``rules[i]`` is where ``spec.patterns[i]`` comes from."""

    prefix: str
    spec: pathspec.GitIgnoreSpec
    rules: tuple[Rule, ...]
    any_pattern: re.Pattern[str] | None
    base: str = ""

    def decide(self, path: str) -> tuple[bool, Rule] | None:
        """(True: ignored, or False: re-included by a negation, and the deciding rule), or
        None when no pattern matched."""
        relative = self.base + path[len(self.prefix) :]
        if self.any_pattern is not None and self.any_pattern.search(relative) is None:
            return None
        result = self.spec.check_file(relative)
        if result.include is None or result.index is None:
            return None
        return result.include, self.rules[result.index]


def _read_rules(file: Path) -> list[tuple[GitIgnoreSpecPattern, Rule]]:
    """The patterns of one ignore file with their origins; none when it is not a regular
    file. An unreadable file or an invalid pattern is a ``BundleError``."""
    try:
        data = read_regular(file)
    except OSError as exc:
        raise BundleError(f"{file}: cannot read: {exc.strerror}") from None
    if data is None:
        return []
    found = []
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        try:
            patterns = pathspec.GitIgnoreSpec.from_lines([line]).patterns
        except (ValueError, re.error) as exc:  # pathspec's GitIgnorePatternError; a bad [z-a] range
            reason = f": {exc}" if isinstance(exc, re.error) else ""
            raise BundleError(f"{file}:{number}: invalid ignore pattern {line!r}{reason}") from None
        found += [
            (pattern, Rule(file, number, line.strip()))
            for pattern in patterns
            if getattr(pattern, "include", None) is not None
        ]
    return found


def _quick_check(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    """One regex matching wherever any pattern of ``spec`` matches (a fast "no pattern
    applies" answer for most paths), or None when it cannot be built."""
    sources = [
        _NAMED_GROUP.sub("(?:", regex.pattern)
        for p in spec.patterns
        if (regex := getattr(p, "regex", None)) is not None
    ]
    if not sources:
        return None
    try:
        return re.compile("|".join(f"(?:{s})" for s in sources))
    except re.error:
        return None


@dataclass(frozen=True)
class IgnoreRules:
    """The ignore files in force for one directory of the walk (outermost first)."""

    levels: tuple[_Level, ...] = ()

    @classmethod
    def above(cls, root: Path) -> IgnoreRules:
        """The rules of the directories above ``root`` up to the top of the git work tree
        holding it (none when ``root`` is not inside one, or is its top)."""
        root = Path(os.path.realpath(root))
        if (root / ".git").exists():
            return cls()
        chain: list[Path] = []
        for directory in root.parents:
            chain.append(directory)
            if (directory / ".git").exists():
                break
        else:
            return cls()
        rules = cls()
        for directory in reversed(chain):
            base = root.relative_to(directory).as_posix() + "/"
            rules = rules._with(directory, "", {n for n in IGNORE_FILES if (directory / n).exists()}, base)
        return rules

    def enter(self, directory: Path, prefix: str, names: set[str] | frozenset[str]) -> IgnoreRules:
        """The rules for ``directory`` (``prefix`` relative to the root, ``names`` its
        entries): these rules plus the directory's own ignore files, if any."""
        return self._with(directory, prefix, names, "")

    def _with(self, directory: Path, prefix: str, names: set[str] | frozenset[str], base: str) -> IgnoreRules:
        found = [item for name in IGNORE_FILES if name in names for item in _read_rules(directory / name)]
        if not found:
            return self
        spec = pathspec.GitIgnoreSpec([pattern for pattern, _ in found])
        level = _Level(prefix, spec, tuple(rule for _, rule in found), _quick_check(spec), base)
        return IgnoreRules(self.levels + (level,))

    def rule_for(self, path: str, is_dir: bool) -> tuple[bool, Rule] | None:
        """Whether ``path`` (relative to the root, ``/``-separated) is ignored (True) or
        re-included (False), and by which rule; None when no rule matches it."""
        if is_dir:
            path += "/"
        for level in reversed(self.levels):
            decision = level.decide(path)
            if decision is not None:
                return decision
        return None

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` (relative to the root, ``/``-separated) is ignored."""
        if not self.levels:
            return False
        decision = self.rule_for(path, is_dir)
        return decision is not None and decision[0]
