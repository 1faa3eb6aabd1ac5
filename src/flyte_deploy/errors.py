"""Errors and exit codes.

Every error a user can cause is a ``FlyteDeployError`` whose ``str`` is one line naming the
file, line, environment, task or plugin at fault; its ``exit_code`` is distinct per kind.
Anything else escaping a deploy is an internal error (exit 3, with a traceback).
"""

from __future__ import annotations

from enum import IntEnum


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

    def __init__(self, message: str, *, registered: "tuple[str, ...] | list[str]" = (),
                 not_registered: "tuple[str, ...] | list[str]" = (), hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.registered = tuple(registered)
        self.not_registered = tuple(not_registered)
        self.hint = hint

    def with_progress(self, registered_before: "list[str]", pending_after: "list[str]") -> "RegistrationError":
        """This error with the tasks registered before it and the ones never attempted after it."""
        return RegistrationError(self.message, registered=[*registered_before, *self.registered],
                                 not_registered=[*self.not_registered, *pending_after], hint=self.hint)

    def __str__(self) -> str:
        text = self.message
        if self.registered or self.not_registered:
            text += (f"; registered: {', '.join(self.registered) or 'none'};"
                     f" not registered: {', '.join(self.not_registered) or 'none'}")
        return f"{text}; {self.hint}" if self.hint else text


class ControlPlaneError(FlyteDeployError):
    """A call to the Flyte control plane failed (unreachable, TLS, auth, or an error answer).
    During a deploy the remote backend turns it into a ``RegistrationError``."""

    exit_code = ExitCode.CONTROL_PLANE_FAILED


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
