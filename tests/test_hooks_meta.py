"""Every hookspec has a section in docs/plugins/hooks.md and is exercised by a test."""

from __future__ import annotations

import re

import pytest

from flyte_deploy.pluginmanager import DeployPluginManager, hook_names
from tests.conftest import REPO

HOOKS = hook_names(DeployPluginManager())
DOCS = (REPO / "docs" / "plugins" / "hooks.md").read_text()
TEST_SOURCES = {
    path: path.read_text()
    for path in [*REPO.glob("tests/**/test_*.py"), *REPO.glob("plugins/*/tests/**/test_*.py")]
    if path.name != "test_hooks_meta.py"
}


def test_the_hook_list_is_complete():
    assert len(HOOKS) >= 15 and "discover_environments" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docs_section(hook):
    assert re.search(rf"^## {hook}$", DOCS, re.M), f"docs/plugins/hooks.md lacks a '## {hook}' section"
    section = DOCS.split(f"## {hook}\n", 1)[1].split("\n## ", 1)[0]
    assert f"`{hook}(" in section, f"the {hook} section does not show its signature"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    users = [p.name for p, text in TEST_SOURCES.items() if re.search(rf"\b{hook}\b", text)]
    assert users, f"no test mentions the hook {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_docstring_states_its_return_contract(hook):
    spec = getattr(DeployPluginManager().hook, hook).spec
    doc = spec.function.__doc__ or ""
    assert ":returns:" in doc, f"hookspec {hook} does not document what it returns"
