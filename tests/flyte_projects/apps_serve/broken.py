"""An app whose server fails as it starts: ``serve`` reports its last error line."""

import flyte.app

broken = flyte.app.AppEnvironment(name="broken", port=8094)


@broken.server
def start() -> None:
    raise RuntimeError("the model file is missing")
