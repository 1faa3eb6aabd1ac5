"""The plugin examples of docs/plugins/writing.md and policy.md work as written."""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy.builtin.local_backend import load_task_spec

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "plugins"

APP = """
import flyte_deploy as fd

prep = fd.TaskEnvironment(name="prep", resources=fd.Resources(cpu=1, memory="1Gi"))
train = fd.TaskEnvironment(name="train", depends_on=[prep], description="trains",
                           resources=fd.Resources(cpu=1, memory="1Gi"))

@prep.task
def clean(x: int) -> int:
    return x

@train.task(retries=0)
def fit(x: int) -> int:
    return clean(x)
"""


def block(doc: str, first_line: str) -> str:
    """The code block of ``doc`` that starts with ``first_line``."""
    blocks = [textwrap.dedent(b) for b in re.findall(r"```(?:python|toml)\n(.*?)```", (DOCS / doc).read_text(), re.S)]
    found = [b for b in blocks if b.startswith(first_line)]
    assert found, f"{doc} has no code block starting with {first_line!r}"
    return found[0]


def test_the_deployconf_example(deploy_project, hook_recorder):
    deploy_project({"app.py": APP, "deployconf.py": block("writing.md", "# deployconf.py")})
    run = deploy_project.deploy("app.py", "train").assert_ok()
    assert re.fullmatch(r"main-[0-9a-f]{8}", run.json["version"])
    assert hook_recorder.getcall("compute_version").returned == run.json["version"]
    listed = deploy_project.run_cli("plugins", "--json", "--root-dir", str(deploy_project.root)).assert_ok()
    deployconf = next(p for p in listed.json["plugins"] if p["name"] == "deployconf")
    assert deployconf["source"] == "local" and deployconf["hooks"] == ["compute_version", "phase_finished"]


def test_the_wrapper_and_stash_examples(deploy_project):
    wrapper = block("writing.md", "@fd.hookimpl(wrapper=True)\ndef serialize_task")
    stash = block("writing.md", "BUILT = fd.StashKey")
    source = "import flyte_deploy as fd\n\n" + wrapper + "\n\n" + stash
    deploy_project({"app.py": APP, "deployconf.py": source})
    run = deploy_project.deploy("app.py", "train").assert_ok()
    assert len(run.json["registrations"]) == 2
    spec, _ = load_task_spec(str(run.store), "train.fit")
    assert spec.task_template.metadata.retries.retries == 1  # raised from 0 by the wrapper


def test_the_pyproject_plugin_example_and_its_settings(deploy_project):
    table = block("writing.md", "[tool.flyte-deploy.plugin.deploy_hooks]")
    deploy_project(
        {
            "app.py": APP,
            "tools/deploy_hooks.py": block("writing.md", "# tools/deploy_hooks.py"),
            "pyproject.toml": '[tool.flyte-deploy]\nplugins = ["tools/deploy_hooks.py"]\n\n' + table,
        }
    )
    run = deploy_project.deploy("app.py", "train").assert_ok()
    assert run.json["version"].startswith("main-")

    deploy_project(
        {
            "pyproject.toml": '[tool.flyte-deploy]\nplugins = ["tools/deploy_hooks.py"]\n\n'
            '[tool.flyte-deploy.plugin.deploy_hooks]\nversion_prefix = "no good"\n'
        }
    )
    bad = deploy_project.deploy("app.py", "train").assert_exit(4)
    assert "version_prefix must be a name, got 'no good'" in bad.stderr


@pytest.mark.parametrize("copy_style", ["loaded_modules", "all"])
def test_the_policy_example(deploy_project, register_plugin, copy_style):
    module = types.ModuleType("acme_policy")
    exec(compile(block("policy.md", "# acme_policy/__init__.py"), "acme_policy.py", "exec"), module.__dict__)
    register_plugin(module, "acme", policy=True)
    deploy_project({"app.py": APP})
    run = deploy_project.check("app.py", "train", "--copy-style", copy_style).assert_exit(6)
    expected = [("env.description", "prep", "acme")]
    if copy_style == "all":
        expected.append(("bundle.copy-style", "bundle", "acme"))
    assert [(v["rule"], v["subject"], v["plugin"]) for v in run.violations] == expected


def test_the_policy_wrapper_example_vetoes_inside_a_phase(deploy_project, register_plugin):
    module = types.ModuleType("digest_policy")
    module.fd = fd
    exec(
        compile(block("policy.md", "@fd.hookimpl(wrapper=True)\ndef build_image"), "digest_policy.py", "exec"),
        module.__dict__,
    )

    class FakeBuilt:
        """A builder that claims to have pushed but reports no digest."""

        @fd.hookimpl
        def build_image(self, environment, image):
            return fd.ImageRef(environment=environment.name, uri=image.uri, builder="fake", built=True)

    register_plugin(FakeBuilt(), "fake_builder")
    register_plugin(module, "digest_policy", policy=True)
    deploy_project({"app.py": APP})
    run = deploy_project.deploy("app.py", "train").assert_exit(6)
    assert "image.digest: prep: the builder reported no manifest digest" in run.stderr
    assert run.deployed() == []
