"""A command app: ``fserve`` unpacks the bundle, then runs the command in a shell of its own,
``$PORT`` expanded: the bundle's files over HTTP, from a grandchild of ``serve``."""

import flyte.app

files = flyte.app.AppEnvironment(
    name="files",
    args=["python", "-m", "http.server", "$PORT", "--bind", "127.0.0.1"],
    port=8095,
    requires_auth=False,
)
