"""flyte-deploy: deploy Flyte task environments; every phase is a pluggy hook."""

from .api import deploy, open_session
from .errors import (
    BundleError,
    DependencyError,
    DiscoveryError,
    ExitCode,
    FlyteDeployError,
    ImageBuildError,
    PluginError,
    PolicyViolation,
    RegistrationError,
    RunError,
    SerializationError,
    UploadError,
    UsageError,
)
from .hookspecs import hookimpl, hookspec
from .image import Image
from .sdk import Cache, Dir, File, Resources, Secret, Task, TaskEnvironment
from .session import DeploySession, StashKey
from .types import (
    Bundle,
    DeployPlan,
    DeployRequest,
    DeployResult,
    Discovery,
    ImageBuilder,
    ImageRef,
    Registration,
    SerializedTask,
    SourceLink,
    Violation,
)

__all__ = [
    "Bundle", "BundleError", "Cache", "DependencyError", "DeployPlan", "DeployRequest", "DeployResult",
    "DeploySession", "Discovery", "DiscoveryError", "ExitCode", "FlyteDeployError", "Image", "ImageBuildError",
    "ImageBuilder", "ImageRef", "PluginError", "PolicyViolation", "Registration", "RegistrationError",
    "Resources", "Secret", "SerializationError", "SerializedTask", "SourceLink", "StashKey", "Task",
    "TaskEnvironment", "UploadError", "UsageError", "Violation", "deploy", "hookimpl", "hookspec", "open_session",
    "Dir", "File", "RunError",
]
