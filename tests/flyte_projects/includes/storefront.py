"""A FastAPI app whose pages come from a static directory that no module imports, bundled
through ``include``."""

from pathlib import Path

import fastapi
from fastapi.responses import HTMLResponse, PlainTextResponse
from flyte.app.extras import FastAPIAppEnvironment

STATIC = Path(__file__).parent / "static"
api = fastapi.FastAPI()


@api.get("/", response_class=HTMLResponse)
def index() -> str:
    return (STATIC / "index.html").read_text()


@api.get("/css/site.css", response_class=PlainTextResponse)
def stylesheet() -> str:
    return (STATIC / "css" / "site.css").read_text()


storefront = FastAPIAppEnvironment(
    name="includes-storefront",
    app=api,
    port=8082,
    include=["static"],
    requires_auth=False,
)
