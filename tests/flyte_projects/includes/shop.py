"""A task environment whose tasks read files no module imports, bundled through
``include``: a data file, a directory of templates (its ignored files left out), a glob of
config files and a module imported only at run time."""

import importlib
from pathlib import Path

import flyte

HERE = Path(__file__).parent

shop_env = flyte.TaskEnvironment(
    name="includes-shop",
    include=["data/prices.csv", "templates", "conf/*.yaml", "plugins/late.py"],
)


@shop_env.task
def total() -> float:
    """The sum of the prices in the included data file."""
    lines = (HERE / "data" / "prices.csv").read_text().splitlines()[1:]
    return sum(float(line.split(",")[1]) for line in lines)


@shop_env.task
def render(name: str) -> str:
    """A template of the included directory, filled in."""
    header = (HERE / "templates" / "partials" / "header.txt").read_text().strip()
    body = (HERE / "templates" / "report.txt").read_text().strip()
    return f"{header} {body.format(name=name)}"


@shop_env.task
def settings() -> list[str]:
    """The names of the config files the glob included, and the late plugin's name."""
    found = sorted(p.name for p in (HERE / "conf").iterdir())
    return [*found, importlib.import_module("plugins.late").NAME]
