"""A Flyte app beside the tasks: a FastAPI service deployed and served with flyte-deploy.

Plain Flyte (`flyte.app.extras.FastAPIAppEnvironment`); it depends on the `hello` task
environment, so deploying it deploys that environment first, from the same bundle.
"""

import fastapi
from flyte.app.extras import FastAPIAppEnvironment
from hello import env

api = fastapi.FastAPI(title="hello-api")


@api.get("/hello/{name}")
def hello(name: str) -> dict[str, str]:
    return {"greeting": f"Hello, {name}."}


app_env = FastAPIAppEnvironment(
    name="hello-api",
    app=api,
    port=8080,
    depends_on=[env],
    requires_auth=False,
    description="Greets people over HTTP",
)
