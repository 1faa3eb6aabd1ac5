"""Built-in ``register_environment``: hands one environment's serialized tasks to the
backend selected by name for this command (``session.backend``, see ``selection.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..environments import Environment
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..types import DeployPlan, Registration, SerializedTask


@hookimpl(trylast=True)
def register_environment(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> list[Registration]:
    return session.backend.register(session, environment, tasks, plan)
