"""Repo-level pytest configuration. Real servers (registry, S3, GCS, dockerd, a Flyte
control plane) are started by the fixture modules below, on 127.0.0.1, and stopped by
process id.

Test tiers: every test that uses a fixture of ``SERVER_FIXTURE_MODULES`` (directly or
through another fixture) is marked ``servers``, so ``pytest -m "not servers"`` is the
quick unit tier. ``--no-skips`` (what CI passes) fails the run when any test was skipped.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "flyte_deploy.testing",
    "pytester",
    "tests.fixtures.processes",
    "tests.fixtures.flyte_server",
    "tests.fixtures.gitrepos",
    "tests.fixtures.s3",
    "tests.fixtures.gcs",
    "tests.fixtures.registry",
    "tests.fixtures.dockerd",
    "tests.fixtures.base_image",
]

#: fixture modules whose fixtures start a server or build the debootstrapped base image
SERVER_FIXTURE_MODULES = frozenset(
    {
        "tests.fixtures.flyte_server",
        "tests.fixtures.s3",
        "tests.fixtures.gcs",
        "tests.fixtures.registry",
        "tests.fixtures.dockerd",
        "tests.fixtures.base_image",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips",
        action="store_true",
        default=False,
        help="fail the run when any test is skipped (CI: every test must run)",
    )


def uses_servers(item: pytest.Item) -> bool:
    """Whether any fixture in the test's closure comes from ``SERVER_FIXTURE_MODULES``."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        getattr(definition.func, "__module__", None) in SERVER_FIXTURE_MODULES
        for name in info.names_closure
        for definition in info.name2fixturedefs.get(name, ())
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if uses_servers(item):
            item.add_marker(pytest.mark.servers)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.getoption("--no-skips") and terminalreporter.stats.get("skipped"):
        count = len(terminalreporter.stats["skipped"])
        terminalreporter.write_line(f"--no-skips: {count} test(s) skipped; every test must run here", red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped") if reporter is not None else None
    if session.config.getoption("--no-skips") and skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
