"""Every hookspec has a contract, a typed call, a docstring with `:param:` for each argument
and its None contract, a docs/plugins/hooks.md section that matches them and links the
built-ins and packaged plugins implementing it, and a test exercising it."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from flyte_deploy.contracts import contract_of
from flyte_deploy.hookcalls import HookCalls
from flyte_deploy.pluginmanager import BUILTIN_PLUGINS, DeployPluginManager, hook_names
from tests.conftest import REPO

PM = DeployPluginManager()
HOOKS = hook_names(PM)
DOCS = (REPO / "docs" / "plugins" / "hooks.md").read_text()
TEST_SOURCES = {
    path: path.read_text()
    for path in [*REPO.glob("tests/**/test_*.py"), *REPO.glob("plugins/*/tests/**/test_*.py")]
    if path.name != "test_hooks_meta.py"
}


def implementing(hook, paths):
    """The files among ``paths`` (relative to the repository) with a ``@hookimpl`` of ``hook``."""
    return sorted(
        path
        for path in paths
        if re.search(rf"^@hookimpl.*\n(?:@.*\n)*def {hook}\(", (REPO / path).read_text(), re.MULTILINE)
    )


BUILTIN_FILES = [
    str(Path(importlib.util.find_spec(module).origin).relative_to(REPO))  # a module or a package
    for _, module in BUILTIN_PLUGINS
]
PACKAGED_FILES = [path.relative_to(REPO).as_posix() for path in REPO.glob("plugins/*/src/**/*.py")]


def spec_of(hook):
    return getattr(PM.hook, hook).spec


def section(hook):
    assert re.search(rf"^## {hook}$", DOCS, re.MULTILINE), f"docs/plugins/hooks.md lacks a '## {hook}' section"
    return DOCS.split(f"## {hook}\n", 1)[1].split("\n## ", 1)[0]


def docstring_fields(hook):
    """``{name: text}`` of the spec docstring's ``:param name:`` and ``:returns:`` fields."""
    doc = inspect.cleandoc(spec_of(hook).function.__doc__ or "")
    fields = {}
    for match in re.finditer(r"^:(param (\w+)|returns):(.*(?:\n    .*)*)", doc, re.MULTILINE):
        fields[match.group(2) or "returns"] = " ".join(match.group(3).split())
    return fields


def reference(hook):
    """The block the hook's docs section opens with, rendered from its spec and contract."""
    spec = spec_of(hook)
    returns = inspect.signature(spec.function).return_annotation
    arrow = "" if returns in ("None", None) else f" -> {returns}"
    lines = [f"`{hook}({', '.join(spec.argnames)}){arrow}` — {contract_of(getattr(PM.hook, hook)).summary}.", ""]
    fields = docstring_fields(hook)
    lines += [f"- `{name}`: {fields[name]}" for name in spec.argnames]
    lines.append(f"- returns: {fields['returns']}")
    return re.sub(r"``([^`]+)``", r"`\1`", "\n".join(lines))


def test_the_hook_list_is_complete():
    assert len(HOOKS) >= 17 and {"discover_environments", "register_backends"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_contract_and_a_typed_call_with_the_spec_arguments(hook):
    assert contract_of(getattr(PM.hook, hook)) is not None, f"hookspec {hook} is not declared with @spec(Contract(...))"
    method = getattr(HookCalls, hook, None)
    assert method is not None, f"HookCalls has no method {hook}"
    assert list(inspect.signature(method).parameters)[1:] == list(spec_of(hook).argnames)


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_docstring_states_every_param_and_the_none_contract(hook):
    fields = docstring_fields(hook)
    missing = [name for name in spec_of(hook).argnames if name not in fields]
    assert not missing, f"hookspec {hook} has no :param: for {missing}"
    assert "returns" in fields, f"hookspec {hook} does not document what it returns"
    assert "None" in fields["returns"] or fields["returns"] == "nothing.", (
        f"hookspec {hook} does not say what None means: {fields['returns']!r}"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docs_section_opens_with_its_spec_and_contract(hook):
    expected = reference(hook)
    assert section(hook).lstrip("\n").startswith(expected + "\n"), (
        f"the {hook} section of docs/plugins/hooks.md must open with (rendered from hookspecs.py):\n{expected}"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docs_section_links_its_builtin_and_packaged_implementations(hook):
    text = section(hook)
    for path in implementing(hook, BUILTIN_FILES):
        module = path.removeprefix("src/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        link = f"[`{module}`](../../{path})"
        assert link in text, f"the {hook} section does not link its built-in: {link}"
    for path in implementing(hook, PACKAGED_FILES):
        assert f"](../../{path})" in text, f"the {hook} section does not link the packaged plugin {path}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    users = [p.name for p, text in TEST_SOURCES.items() if re.search(rf"\b{hook}\b", text)]
    assert users, f"no test mentions the hook {hook}"
