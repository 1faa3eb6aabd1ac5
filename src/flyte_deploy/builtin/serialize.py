"""Built-in ``serialize_task``: one task into a flyteidl2 ``TaskSpec``.

The container runs ``python -m flyte_deploy.runtime`` with the bundle URI, module and
function, so the template says exactly how a runtime loads the task from the bundle.
"""

from __future__ import annotations

from flyteidl2.core import identifier_pb2, tasks_pb2
from flyteidl2.task import environment_pb2, task_definition_pb2

from ..hookspecs import hookimpl
from ..sdk import Task, TaskEnvironment
from ..session import DeploySession
from ..types import DeployPlan, SerializedTask

RUNTIME_COMMAND = ("python", "-m", "flyte_deploy.runtime")


def container_args(task: Task, plan: DeployPlan) -> list[str]:
    """Arguments of the runtime entrypoint; ``{{.x}}`` placeholders are filled at run time."""
    args = ["--inputs", "{{.input}}", "--outputs-path", "{{.outputPrefix}}", "--version", str(plan.version)]
    if plan.bundle_uri:
        args += ["--tgz", plan.bundle_uri, "--dest", "."]
    return args + ["--module", task.module, "--function", task.function_name]


def serialize(task: Task, environment: TaskEnvironment, plan: DeployPlan, project: str, domain: str) -> SerializedTask:
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project=project, domain=domain,
                                     name=task.name, version=str(plan.version)),
        type="python",
        metadata=tasks_pb2.TaskMetadata(retries={"retries": task.retries}, interruptible=bool(task.interruptible),
                                        code_bundle_uri=plan.bundle_uri or ""),
        container=tasks_pb2.Container(image=plan.images[environment.name].uri, command=list(RUNTIME_COMMAND),
                                      args=container_args(task, plan)),
    )
    spec = task_definition_pb2.TaskSpec(
        task_template=template, short_name=task.short_name,
        environment=environment_pb2.Environment(name=environment.name, description=environment.description or ""),
    )
    return SerializedTask(environment=environment.name, name=task.name, spec=spec)


@hookimpl(trylast=True)
def serialize_task(session: DeploySession, environment: TaskEnvironment, task: Task, plan: DeployPlan) -> SerializedTask:
    return serialize(task, environment, plan, str(session.config.get("project")), str(session.config.get("domain")))
