"""Flyte apps deployed beside task environments: a plain AppEnvironment with a server
function, a FastAPI app, and an app that depends on a task environment (deployed first)."""

from datetime import timedelta

import fastapi
import flyte
import flyte.app
from flyte.app.extras import FastAPIAppEnvironment

worker_env = flyte.TaskEnvironment(
    name="apps-worker",
    resources=flyte.Resources(cpu=1, memory="512Mi"),
    env_vars={"ROLE": "worker"},
)


@worker_env.task
def score(text: str) -> float:
    """Score a text by its length."""
    return len(text) / 100.0


echo_app = flyte.app.AppEnvironment(
    name="apps-echo",
    port=8081,
    resources=flyte.Resources(cpu=(1, 2), memory="1Gi"),
    scaling=flyte.app.Scaling(replicas=(0, 3), scaledown_after=timedelta(minutes=5)),
    env_vars={"GREETING": "hello"},
    secrets=[flyte.Secret(key="echo-token", as_env_var="ECHO_TOKEN")],
    requires_auth=False,
    description="Echoes what it is sent",
    timeouts=flyte.app.Timeouts(request=timedelta(seconds=30)),
)


@echo_app.server
def serve_echo() -> None:
    import http.server
    import os

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{os.environ.get('GREETING', '')} {self.path}".encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

    http.server.HTTPServer(("0.0.0.0", 8081), Echo).serve_forever()


api = fastapi.FastAPI(title="scores")


@api.get("/score")
def score_endpoint(text: str) -> dict[str, float]:
    return {"score": len(text) / 100.0}


scores_app = FastAPIAppEnvironment(
    name="apps-scores",
    app=api,
    depends_on=[worker_env],
    resources=flyte.Resources(cpu=1, memory="1Gi"),
    scaling=flyte.app.Scaling(replicas=(1, 2), metric=flyte.app.Scaling.Concurrency(10)),
    env_vars={"SCORER": "apps-worker.score"},
    secrets=flyte.Secret(key="scores-key", group="ml"),
    port=8082,
)
