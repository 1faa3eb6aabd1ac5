"""Tasks with triggers: a cron schedule with inputs and a fixed rate."""

from datetime import datetime

import flyte

env = flyte.TaskEnvironment(name="triggers")


@env.task(
    triggers=flyte.Trigger("nightly", flyte.Cron("0 2 * * *"), inputs={"region": "eu", "when": flyte.TriggerTime})
)
def report(region: str, when: datetime) -> str:
    return region


@env.task(triggers=[flyte.Trigger("often", flyte.FixedRate(30), auto_activate=False)])
def poll(limit: int = 10) -> int:
    return limit
