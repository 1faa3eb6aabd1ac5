"""Files that look like secrets: a bundle is uploaded to shared storage and unpacked in
every task's container, so a credentials file in it is a leak. ``find_secrets`` names each
selected file that looks like one, by name (and, for ``*.pem``/``*.key``, by a private-key
header in its first bytes); the bundle phase warns about each, except those matched by the
allow list (``[tool.flyte-deploy] bundle_allow_secrets``, gitignore-style patterns)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..errors import UsageError
from .files import read_regular

if TYPE_CHECKING:
    import pathspec

ALLOW_KEY = "bundle_allow_secrets"

#: (regex over the root-relative path, what it is); the first match names the kind
_BY_PATH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), kind)
    for p, kind in (
        (r"(^|/)\.env(\.(?!(example|sample|template|dist|defaults?)$)[^/]+)?$", "a dotenv file"),
        (r"(^|/)id_(rsa|dsa|ecdsa|ed25519)(_sk)?$", "an SSH private key"),
        (r"(^|/)\.ssh/(?!known_hosts$|config$|[^/]*\.pub$)[^/]+$", "an SSH key"),
        (r"(^|/)\.aws/credentials$", "AWS credentials"),
        (r"(^|/)(\.netrc|_netrc)$", "a netrc file (login passwords)"),
        (r"(^|/)\.git-credentials$", "stored git credentials"),
        (r"(^|/)\.pgpass$", "a PostgreSQL password file"),
        (r"(^|/)\.(pypirc|npmrc)$", "a package-index credentials file"),
        (r"(^|/)\.docker/config\.json$", "Docker registry credentials"),
        (r"(^|/)\.kube/config$|(^|/)kubeconfig$", "a Kubernetes config (cluster credentials)"),
        (
            (
                r"(^|/)(application_default_credentials|credentials|client_secrets?[^/]*|[^/]*service[-_]?account[^/]*)"
                r"\.json$"
            ),
            "a cloud credentials file (gcloud/service account)",
        ),
        (r"(^|/)\.config/gcloud/", "gcloud credentials"),
        (r"\.(p12|pfx|ppk|jks|keystore)$", "a private key store"),
    )
)
#: a cheap first test that every path ``_BY_PATH`` or ``_KEY_FILES`` matches passes
_CANDIDATE_NAMES = frozenset(
    {
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
        "credentials",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".pgpass",
        ".pypirc",
        ".npmrc",
        "config",
        "kubeconfig",
    }
)
_CANDIDATE_SUFFIXES = (".json", ".pem", ".key", ".p12", ".pfx", ".ppk", ".jks", ".keystore")
#: names whose content decides: only a private key is a secret (a certificate is not)
_KEY_FILES = re.compile(r"\.(pem|key)$")
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_HEADER_BYTES = 64 << 10


class SecretFile(NamedTuple):
    """A bundled file that looks like a secret, and what it looks like."""

    name: str
    kind: str


def allow_list(patterns: Sequence[str], source: str) -> pathspec.GitIgnoreSpec | None:
    """The allow list as a spec (None when empty); an invalid pattern is a ``UsageError``
    naming ``source``."""
    if not patterns:
        return None
    import pathspec  # only when there are patterns

    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, re.error) as exc:
        raise UsageError(f"{source}: {ALLOW_KEY}: invalid pattern: {exc}") from None


def find_secrets(files: Mapping[str, str], allow: pathspec.GitIgnoreSpec | None = None) -> list[SecretFile]:
    """The files of ``files`` (archive name -> path) that look like secrets and that
    ``allow`` does not match, sorted by name."""
    found = []
    for name, path in files.items():
        kind = _kind(name, path)
        if kind is not None and not (allow is not None and allow.match_file(name)):
            found.append(SecretFile(name, kind))
    return sorted(found)


def _kind(name: str, path: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if not (
        base in _CANDIDATE_NAMES
        or base.startswith(".env")
        or base.endswith(_CANDIDATE_SUFFIXES)
        or ".ssh/" in name
        or "/gcloud/" in name
    ):
        return None  # the common case, without a regex
    for pattern, kind in _BY_PATH:
        if pattern.search(name):
            return kind
    if _KEY_FILES.search(name):
        try:
            head = read_regular(path, _HEADER_BYTES) or b""
        except OSError:
            return None
        if _PRIVATE_KEY.search(head):
            return "a private key (PEM)"
    return None


def warnings_for(secrets: Iterable[SecretFile]) -> list[str]:
    """One warning line per secret-looking file, saying how to leave it out or allow it."""
    return [
        f"warning: bundling {s.name}, which looks like {s.kind}; leave it out with .gitignore or .flyteignore,"
        f" or list it in [tool.flyte-deploy] {ALLOW_KEY} if it belongs in the bundle"
        for s in secrets
    ]
