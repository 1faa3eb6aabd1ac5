import flyte

shared = flyte.TaskEnvironment(name="pkg-shared")
