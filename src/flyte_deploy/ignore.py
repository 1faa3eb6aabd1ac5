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
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pathspec

from .errors import BundleError

IGNORE_FILES = (".gitignore", ".flyteignore")

# pathspec marks the "matched a directory" part of a pattern with this group; it is
# renamed so every pattern of a file can be joined into one quick pre-check regex
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


@dataclass(frozen=True)
class _Level:
    """The patterns of one directory's ignore files. A root-relative path is matched
    as ``base + path[len(prefix):]``: ``prefix`` is the directory relative to the root
    (``""`` for the root and above), ``base`` the root relative to a directory above it."""

    prefix: str
    spec: pathspec.GitIgnoreSpec
    any_pattern: re.Pattern[str] | None
    base: str = ""

    def decide(self, path: str) -> bool | None:
        """True (ignored), False (re-included by a negation) or None (no pattern matched)."""
        relative = self.base + path[len(self.prefix):]
        if self.any_pattern is not None and self.any_pattern.search(relative) is None:
            return None
        return self.spec.check_file(relative).include


def _read_patterns(file: Path) -> list[str]:
    try:
        text = file.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise BundleError(f"{file}: cannot read: {exc.strerror}") from None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError:  # pathspec's GitIgnorePatternError
            raise BundleError(f"{file}:{number}: invalid ignore pattern {line!r}") from None
    return lines


def _quick_check(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    """One regex matching wherever any pattern of ``spec`` matches (a fast "no pattern
    applies" answer for most paths), or None when it cannot be built."""
    sources = [_NAMED_GROUP.sub("(?:", regex.pattern) for p in spec.patterns if (regex := getattr(p, "regex", None))]
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
            rules = rules._with(directory, "", {n for n in IGNORE_FILES if (directory / n).is_file()}, base)
        return rules

    def enter(self, directory: Path, prefix: str, names: set[str] | frozenset[str]) -> IgnoreRules:
        """The rules for ``directory`` (``prefix`` relative to the root, ``names`` its
        entries): these rules plus the directory's own ignore files, if any."""
        return self._with(directory, prefix, names, "")

    def _with(self, directory: Path, prefix: str, names: set[str] | frozenset[str], base: str) -> IgnoreRules:
        present = [directory / name for name in IGNORE_FILES if name in names]
        if not present:
            return self
        lines = [line for file in present if file.is_file() for line in _read_patterns(file)]
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        if not any(getattr(p, "include", None) is not None for p in spec.patterns):
            return self
        return IgnoreRules(self.levels + (_Level(prefix, spec, _quick_check(spec), base),))

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` (relative to the root, ``/``-separated) is ignored."""
        if not self.levels:
            return False
        if is_dir:
            path += "/"
        for level in reversed(self.levels):
            decision = level.decide(path)
            if decision is not None:
                return decision
        return False
