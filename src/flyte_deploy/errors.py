"""Errors and exit codes.

Every error a user can cause is a ``FlyteDeployError`` whose ``str`` is one line naming the
file, line, environment, task or plugin at fault; its ``exit_code`` is distinct per kind.
Anything else escaping a deploy is an internal error (exit 3, with a traceback).

Nothing flyte-deploy prints carries a credential: ``scrub`` is applied to every error line,
traceback and JSON document the command line writes (``cli.run_cli``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import IO, Any, cast


class ExitCode(IntEnum):
    """Process exit codes of ``flyte-deploy``."""

    OK = 0
    #: a phase failed while deploying (upload, image push, registration)
    DEPLOY_FAILED = 1
    #: interrupted by the user (Ctrl-C)
    INTERRUPTED = 2
    #: a bug: an unexpected exception
    INTERNAL_ERROR = 3
    #: bad command line, configuration or SDK usage
    USAGE_ERROR = 4
    #: a file failed to import, or an environment was not found / duplicated
    DISCOVERY_FAILED = 5
    #: a policy plugin rejected the plan
    POLICY_VIOLATION = 6
    #: a depends_on cycle or unresolvable dependency
    DEPENDENCY_FAILED = 7
    #: a task could not be serialized (unsupported type, bad settings)
    SERIALIZATION_FAILED = 8
    #: the code bundle could not be built, or holds a member that cannot be unpacked safely
    BUNDLE_FAILED = 9
    #: an image could not be built or pushed
    IMAGE_FAILED = 10
    #: the bundle could not be uploaded
    UPLOAD_FAILED = 11
    #: the backend refused or failed registration
    REGISTRATION_FAILED = 12
    #: a plugin failed to load or returned something invalid
    PLUGIN_ERROR = 13
    #: ``flyte-deploy run``: the task raised or could not be loaded
    RUN_FAILED = 14
    #: the Flyte control plane could not be reached or answered with an error (outside a deploy)
    CONTROL_PLANE_FAILED = 15
    #: a stored code bundle does not match the digest in its name (damaged or swapped)
    BUNDLE_CORRUPT = 16
    #: the machine refused: a file or directory that cannot be written (permissions, read-only)
    ENVIRONMENT_FAILED = 17
    #: no space left on the device (or the disk quota is exhausted)
    DISK_FULL = 18
    #: the local backend's store is damaged, unreadable or cannot be migrated
    STORE_FAILED = 19
    #: ``flyte-deploy diff``: deploying the plan would change what the backend holds
    CHANGES_PENDING = 20


class FlyteDeployError(Exception):
    """Base of all user-facing errors; the message is one line."""

    exit_code: ExitCode = ExitCode.DEPLOY_FAILED


class UsageError(FlyteDeployError):
    exit_code = ExitCode.USAGE_ERROR


class DiscoveryError(FlyteDeployError):
    exit_code = ExitCode.DISCOVERY_FAILED


class DependencyError(FlyteDeployError):
    exit_code = ExitCode.DEPENDENCY_FAILED


class SerializationError(FlyteDeployError):
    exit_code = ExitCode.SERIALIZATION_FAILED


class BundleError(FlyteDeployError):
    exit_code = ExitCode.BUNDLE_FAILED


class BundleIntegrityError(FlyteDeployError):
    """A stored bundle's tar stream does not hash to the digest in its name."""

    exit_code = ExitCode.BUNDLE_CORRUPT


class ImageBuildError(FlyteDeployError):
    exit_code = ExitCode.IMAGE_FAILED


class UploadError(FlyteDeployError):
    exit_code = ExitCode.UPLOAD_FAILED


class RegistrationError(FlyteDeployError):
    """The backend refused or failed a registration. ``registered`` and ``not_registered``
    name the tasks on either side of the failure when the backend knows them; the
    lifecycle adds the other environments' tasks, and ``str`` names both lists, then
    ``hint`` (e.g. that re-running completes the deploy) when there is one."""

    exit_code = ExitCode.REGISTRATION_FAILED

    def __init__(
        self,
        message: str,
        *,
        registered: tuple[str, ...] | list[str] = (),
        not_registered: tuple[str, ...] | list[str] = (),
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.registered = tuple(registered)
        self.not_registered = tuple(not_registered)
        self.hint = hint

    def with_progress(self, registered_before: list[str], pending_after: list[str]) -> RegistrationError:
        """This error with the tasks registered before it and the ones never attempted after it."""
        return RegistrationError(
            self.message,
            registered=[*registered_before, *self.registered],
            not_registered=[*self.not_registered, *pending_after],
            hint=self.hint,
        )

    def __str__(self) -> str:
        text = self.message
        if self.registered or self.not_registered:
            text += (
                f"; registered: {', '.join(self.registered) or 'none'};"
                f" not registered: {', '.join(self.not_registered) or 'none'}"
            )
        return f"{text}; {self.hint}" if self.hint else text


class ControlPlaneError(FlyteDeployError):
    """A call to the Flyte control plane failed (unreachable, TLS, auth, or an error answer).
    During a deploy the remote backend turns it into a ``RegistrationError``."""

    exit_code = ExitCode.CONTROL_PLANE_FAILED


class StoreError(FlyteDeployError):
    """The local backend's database cannot be used: damaged, written by a newer release,
    not readable, or an old file layout that cannot be migrated. The message names the file."""

    exit_code = ExitCode.STORE_FAILED


class EnvironmentFailure(FlyteDeployError):
    """The machine refused an operation: nothing the project or a plugin did wrong."""

    exit_code = ExitCode.ENVIRONMENT_FAILED


class DiskFull(EnvironmentFailure):
    exit_code = ExitCode.DISK_FULL


#: errno values that are the machine's problem (``environment_error``), not a bug
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_REFUSED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR})


def environment_error(exc: BaseException) -> EnvironmentFailure | None:
    """The ``EnvironmentFailure`` an ``OSError`` stands for (a full disk, a path that
    cannot be written), naming the path; None for any other exception."""
    if not isinstance(exc, OSError) or exc.errno not in _DISK_FULL_ERRNOS | _REFUSED_ERRNOS:
        return None
    path = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or os.strerror(exc.errno or 0)
    if exc.errno in _DISK_FULL_ERRNOS:
        return DiskFull(f"{path}: {reason}; free some space and run again")
    return EnvironmentFailure(f"{path}: {reason}")


class PluginError(FlyteDeployError):
    exit_code = ExitCode.PLUGIN_ERROR


class RunError(FlyteDeployError):
    exit_code = ExitCode.RUN_FAILED


class PolicyViolation(FlyteDeployError):
    """Raised with every violation found; ``str`` lists them one per line. ``plan`` is the
    ``DeployPlan`` that was rejected (when raised by the lifecycle)."""

    exit_code = ExitCode.POLICY_VIOLATION

    def __init__(self, violations: list, plan: object = None) -> None:
        self.violations = list(violations)
        self.plan = plan
        super().__init__(f"{len(self.violations)} policy violation(s)")

    def __str__(self) -> str:
        lines = [f"{len(self.violations)} policy violation(s):"]
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


# -- credentials never shown ----------------------------------------------------------------

#: names of settings, options and environment variables whose values are secrets
SECRET_NAME = re.compile(r"key|secret|token|passw|credential|session|auth|signature", re.IGNORECASE)
#: environment variables named like secrets that hold a location, not a secret
_NOT_SECRET_VARIABLE = re.compile(r"_(FILE|PATH|DIR|SOCK|HOME|URL|ENDPOINT|REGION|AUTOLOAD)$", re.IGNORECASE)
#: ``scheme://user:password@`` (also ``dns:///user@host``)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<slash>/?)[^/\s@'\"<>]+@")
#: ``?token=...``, ``&X-Amz-Signature=...``, ``;password=...`` in a query or a DSN
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&;\s]*(?:key|secret|token|passw|signature|credential|sig)[^=&;\s]*=)[^&;\s'\"]+", re.IGNORECASE
)
#: ``Authorization: Bearer ...`` and the like
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
#: secrets shorter than this are not searched for (they would mask ordinary words)
MIN_SECRET_LENGTH = 4
_registered: set[str] = set()


def register_secret(*values: object) -> None:
    """Remember secret values (a token, a password, a storage option) so that ``scrub``
    hides them wherever they appear, for the rest of the process."""
    for value in values:
        if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
            _registered.add(value.strip())


def secret_values(options: Mapping[str, Any]) -> list[str]:
    """The string values of ``options`` (nested too) under secret-like names (``SECRET_NAME``)."""
    found: list[str] = []
    for name, value in options.items():
        if isinstance(value, Mapping):
            found += secret_values(value)
        elif isinstance(value, str) and value and SECRET_NAME.search(str(name)):
            found.append(value)
    return found


def _environment_secrets(environ: Mapping[str, str]) -> list[str]:
    return [
        value
        for name, value in environ.items()
        if SECRET_NAME.search(name)
        and not _NOT_SECRET_VARIABLE.search(name)
        and len(value.strip()) >= 6
        and not value.startswith(("/", "~"))
    ]


def scrub(text: str, secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every credential replaced by ``***``: the user part of URLs, secret
    query parameters, ``Bearer``/``Basic`` values, ``secrets``, the values registered with
    ``register_secret`` and those of secret-named environment variables (``AWS_SECRET_ACCESS_KEY``,
    ``FLYTE_DEPLOY_TOKEN``, ...). The one rule for what flyte-deploy may print."""
    values = set(_registered) | {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    values |= set(_environment_secrets(os.environ if environ is None else environ))
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['slash']}***@", text)
    text = _SECRET_PARAMETER.sub(lambda m: f"{m['name']}***", text)
    return _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} ***", text)


class ScrubbedStderr(io.TextIOBase):
    """``sys.stderr`` (looked up at each write, as ``Console(stderr=True)`` does) with
    ``scrub`` applied to everything written: the stream of progress and report lines."""

    def write(self, text: str) -> int:
        sys.stderr.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stderr, "encoding", None) or "utf-8"


def scrubbed_stderr() -> IO[str]:
    """A ``ScrubbedStderr``, typed as the stream ``rich.console.Console(file=...)`` takes."""
    return cast(IO[str], ScrubbedStderr())
