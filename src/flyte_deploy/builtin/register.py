"""Built-in ``register_environment`` and ``register_app``: hand one environment's serialized
tasks, or one serialized app, to the backend selected by name for this command
(``session.backend``, see ``selection.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..environments import Environment
from ..errors import RegistrationError
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..types import DeployPlan, Registration, SerializedApp, SerializedTask


@hookimpl(trylast=True)
def register_environment(
    session: DeploySession, environment: Environment, tasks: Sequence[SerializedTask], plan: DeployPlan
) -> list[Registration]:
    return session.backend.register(session, environment, tasks, plan)


@hookimpl(trylast=True)
def register_app(
    session: DeploySession, environment: Environment, app: SerializedApp, plan: DeployPlan
) -> Registration:
    if session.backend.register_app is None:  # the lifecycle refuses such a plan earlier
        raise RegistrationError(f"app {app.name}: backend {session.backend.name!r} cannot hold apps")
    return session.backend.register_app(session, environment, app, plan)
