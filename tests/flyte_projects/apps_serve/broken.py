"""An app whose server fails as it starts: ``serve`` reports its last error line."""

import flyte
import flyte.app

broken = flyte.app.AppEnvironment(name="broken", image=flyte.Image.from_debian_base(), port=8094)


@broken.server
def start() -> None:
    raise RuntimeError("the model file is missing")
