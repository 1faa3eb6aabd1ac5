"""register_image_builders: plugins add builders that image.builder selects by name."""

from __future__ import annotations

from flyte_deploy.errors import ExitCode

PROJECT = {
    "envs.py": """
        import flyte_deploy as fd
        env = fd.TaskEnvironment(name="solo", image=fd.Image.from_debian_base().with_pip_packages("six"))

        @env.task
        def hello() -> str:
            return "hi"
    """,
    "deployconf.py": """
        import flyte_deploy as fd

        BUILT = []

        def build(session, environment_name, image):
            BUILT.append(image.uri)
            return fd.ImageRef(environment=environment_name, uri=image.uri, builder="farm", built=True,
                               digest="sha256:" + "0" * 64)

        @fd.hookimpl
        def register_image_builders():
            return [fd.ImageBuilder(name="farm", build=build, description="a build farm")]
    """,
}


def test_a_plugin_builder_selected_by_name_builds_the_image(project, invoke, monkeypatch):
    root = project(
        {
            **PROJECT,
            "pyproject.toml": """
        [tool.flyte-deploy]
        image = { builder = "farm", registry = "registry.acme:5000/team" }
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "--all", "envs.py", "--output", "json", "-q")
    assert result.exit_code == 0, result.stderr
    env = result.json()["environments"][0]
    assert env["image"].startswith("registry.acme:5000/team/flyte-deploy:") and env["image_built"] is True


def test_an_unknown_builder_lists_the_available_ones(project, invoke, monkeypatch):
    root = project(
        {
            **PROJECT,
            "pyproject.toml": """
        [tool.flyte-deploy]
        image = { builder = "nope", registry = "registry.acme:5000" }
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "--all", "envs.py")
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert "image.builder 'nope' is unknown; available:" in result.stderr and "farm" in result.stderr
    assert not (root / ".flyte-deploy").exists()


def test_two_builders_with_one_name_are_an_error(project, invoke, monkeypatch):
    root = project(
        {
            **PROJECT,
            "second.py": PROJECT["deployconf.py"],
            "pyproject.toml": """
        [tool.flyte-deploy]
        plugins = ["second.py"]
        image = { builder = "farm", registry = "registry.acme:5000" }
    """,
        }
    )
    monkeypatch.chdir(root)
    result = invoke("deploy", "--all", "envs.py")
    assert result.exit_code == ExitCode.PLUGIN_ERROR
    assert "two image builders are named 'farm'" in result.stderr
