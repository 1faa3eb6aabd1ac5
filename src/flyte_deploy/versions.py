"""The one rule every deployed version satisfies, given (``--version``) or derived.

A version is 1 to 63 characters: letters, digits, ``.``, ``_`` and ``-``, starting with a
letter or digit. The length is the limit a Flyte control plane enforces on
``TaskIdentifier.version`` (flyteidl2's ``buf.validate`` rule: ``min_len 1, max_len 63``);
the character set keeps a version usable as an image tag, in a URL, a file name or a shell
argument, and never a path (no ``/``, no leading ``.``, so no ``..``). A version that breaks
the rule is refused before anything is discovered, built or written.
"""

from __future__ import annotations

import re

from .errors import UsageError

MAX_LENGTH = 63
PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}")
RULE = f"1 to {MAX_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit"


def version_problem(version: str) -> str | None:
    """What is wrong with ``version`` (None when it follows the rule)."""
    if PATTERN.fullmatch(version):
        return None
    if not version:
        return "it is empty"
    if len(version) > MAX_LENGTH:
        return f"it has {len(version)} characters"
    if not version[0].isascii() or not version[0].isalnum():
        return f"it starts with {version[0]!r}"
    bad = next(c for c in version if not (c.isascii() and (c.isalnum() or c in "._-")))
    return f"{bad!r} is not allowed"


def check_version(version: str, where: str = "version") -> str:
    """``version`` if it follows the rule, else a ``UsageError`` naming ``where`` it came
    from, the problem and the rule."""
    problem = version_problem(version)
    if problem is not None:
        raise UsageError(f"{where} {version!r} is not a valid version ({problem}): a version is {RULE}")
    return version
