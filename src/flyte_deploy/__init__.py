"""flyte-deploy: deploy Flyte task environments; every phase is a pluggy hook."""

from .api import deploy, open_session
from .errors import (
    BundleError, DependencyError, DiscoveryError, ExitCode, FlyteDeployError, ImageBuildError, PluginError,
    PolicyViolation, RegistrationError, RunError, SerializationError, UploadError, UsageError,
)
from .hookspecs import hookimpl, hookspec
from .image import Image
from .sdk import Cache, Dir, File, Resources, Secret, Task, TaskEnvironment
from .session import DeploySession, StashKey
from .types import (
    Backend, Bundle, DeployPlan, DeployRequest, DeployResult, Discovery, ImageBuilder, ImageRef, Listing,
    PhaseReport, Registration, SerializedTask, SourceLink, Violation,
)

__all__ = [
    "Backend",
    "Bundle",
    "BundleError",
    "Cache",
    "DependencyError",
    "DeployPlan",
    "DeployRequest",
    "DeployResult",
    "DeploySession",
    "Dir",
    "Discovery",
    "DiscoveryError",
    "ExitCode",
    "File",
    "FlyteDeployError",
    "Image",
    "ImageBuildError",
    "ImageBuilder",
    "ImageRef",
    "Listing",
    "PhaseReport",
    "PluginError",
    "PolicyViolation",
    "Registration",
    "RegistrationError",
    "Resources",
    "RunError",
    "Secret",
    "SerializationError",
    "SerializedTask",
    "SourceLink",
    "StashKey",
    "Task",
    "TaskEnvironment",
    "UploadError",
    "UsageError",
    "Violation",
    "deploy",
    "hookimpl",
    "hookspec",
    "open_session",
]
