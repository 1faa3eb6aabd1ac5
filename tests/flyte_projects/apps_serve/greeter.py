"""A FastAPI app served by ``flyte-deploy serve`` in tests/test_flyte_apps_serve.py: its
answer comes from a sibling module, so it works only when the bundle holds both files."""

import fastapi
from flyte.app.extras import FastAPIAppEnvironment
from wording import greeting

api = fastapi.FastAPI()


@api.get("/greet/{name}")
def greet(name: str) -> dict[str, str]:
    return {"greeting": greeting(name)}


greeter = FastAPIAppEnvironment(
    name="greeter",
    app=api,
    port=8093,
    requires_auth=False,
)
