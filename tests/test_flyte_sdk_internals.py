"""The adapter's uses of the Flyte SDK's non-public API (adapters/flyte/sdk_internals.py),
checked against the installed SDK: any release that moves or changes one fails here, with
the name of what changed, before it can mis-serialize a deploy."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from flyteidl2.task import task_definition_pb2

from flyte_deploy.adapters.flyte import sdk_internals

flyte = pytest.importorskip("flyte")
REPO = Path(__file__).resolve().parents[1]


def test_the_installed_sdk_is_in_the_tested_range_and_the_extra_pins_it():
    assert sdk_internals.unsupported_version() is None, sdk_internals.sdk_version()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^flyte = \["flyte' + re.escape(sdk_internals.SUPPORTED_RANGE) + r'"\]$', pyproject, re.MULTILINE)


def test_the_private_names_called_exist_with_the_parameters_passed():
    from flyte._deploy import _update_interface_inputs_and_outputs_docstring
    from flyte._internal.image_cache import ImageCache
    from flyte._internal.runtime.trigger_serde import to_task_trigger
    from flyte._utils.description_parser import parse_description
    from flyte._utils.module_loader import local_sys_paths_env

    assert list(inspect.signature(_update_interface_inputs_and_outputs_docstring).parameters) == [
        "typed_interface",
        "native_interface",
    ]
    assert list(inspect.signature(to_task_trigger).parameters) == [
        "t",
        "task_name",
        "task_inputs",
        "task_default_inputs",
    ]
    assert list(inspect.signature(parse_description).parameters)[:2] == ["description", "max_length"]
    assert list(inspect.signature(local_sys_paths_env).parameters) == ["root_dir"]
    assert "image_lookup" in ImageCache.model_fields


def test_image_cache_round_trips_through_the_runtimes_transport_form():
    from flyte._internal.image_cache import ImageCache

    cache = sdk_internals.image_cache({"env": "registry/img:tag"})
    assert ImageCache.from_transport(cache.to_transport).image_lookup == {"env": "registry/img:tag"}


def _env_and_task():
    env = flyte.TaskEnvironment(name="internals", description="Env description", pod_template="p")

    @env.task(triggers=flyte.Trigger("hourly", flyte.Cron("0 * * * *")))
    def documented(x: int) -> int:
        """Short line.

        Longer text.

        Args:
            x: the input
        """
        return x

    return env, documented


def test_deploy_time_additions_come_from_the_sdk(tmp_path):
    import flyte.extras
    from flyte.models import SerializationContext

    _, task = _env_and_task()
    copy = sdk_internals.with_local_sys_paths(task, tmp_path)
    assert "_F_SYS_PATH" in copy.env_vars and "_F_SYS_PATH" not in (task.env_vars or {})
    spec = flyte.extras.serialize(task, SerializationContext(version="v", root_dir=Path(__file__).parent))
    sdk_internals.add_deploy_documentation(spec, task)
    assert spec.environment.description == "Env description"
    assert spec.documentation.short_description == "Short line."
    assert "Longer text." in spec.documentation.long_description
    assert spec.task_template.interface.inputs.variables[0].value.description == "the input"
    triggers = sdk_internals.task_triggers(task, spec)
    assert [type(t) for t in triggers] == [task_definition_pb2.TaskTrigger]
    assert triggers[0].automation_spec.schedule.cron.expression == "0 * * * *"


def test_every_layer_kind_maps_to_ours_or_is_named_as_unbuildable(tmp_path):
    (tmp_path / "req.txt").write_text("six\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    image = (
        flyte.Image.from_debian_base()
        .with_pip_packages("six")
        .with_requirements(tmp_path / "req.txt")
        .with_apt_packages("curl")
        .with_commands(["true"])
        .with_env_vars({"A": "1"})
        .with_workdir("/w")
        .with_source_folder(tmp_path / "src", "/app")
        .with_dockerignore(tmp_path / ".dockerignore")
        .with_pip_packages("attrs", pre=True)
        .with_uv_project(tmp_path / "pyproject.toml")
    )
    assert sdk_internals.image_is_built(image) and not sdk_internals.image_is_built(flyte.Image.from_base("a/b:c"))
    assert sdk_internals.image_ref_name(flyte.Image.from_ref_name("mine")) == "mine"
    layers = list(sdk_internals.image_layers(image))
    kinds = [kind for kind, _, _ in layers]
    expected = [
        "pip",
        "requirements",
        "apt",
        "commands",
        "env",
        "workdir",
        "source",
        "dockerignore",
        "pip",
        "UVProject",
    ]
    assert kinds[-len(expected) :] == expected  # after the default image's own layers
    problems = {kind: problem for kind, _, problem in layers[-len(expected) :] if problem}
    assert set(problems) == {"pip", "UVProject"} and "pip options" in problems["pip"]
    assert dict(layers[-len(expected) :][4][1]) == {"A": "1"}


def test_the_app_translation_and_the_app_fields_read_are_the_ones_used(tmp_path, capsys):
    import dataclasses

    import flyte.app
    from flyte.app._runtime import translate_app_env_to_idl
    from flyte.models import CodeBundle, SerializationContext
    from flyteidl2.app import app_definition_pb2

    assert list(inspect.signature(translate_app_env_to_idl).parameters) == [
        "app_env",
        "serialization_context",
        "parameter_overrides",
        "desired_state",
    ]
    fields = {f.name for f in dataclasses.fields(flyte.app.AppEnvironment)}
    assert {"_server", "_on_startup", "_on_shutdown", "_caller_frame", "_declaring_file"} <= fields
    app = flyte.app.AppEnvironment(name="internals-app", port=8089)
    line = inspect.currentframe().f_lineno - 1
    assert sdk_internals.app_declaring_line(app) == line
    context = SerializationContext(
        version="v9",
        project="p",
        domain="d",
        code_bundle=CodeBundle(tgz="file:///b.tgz", destination=".", computed_version="v9"),
        image_cache=sdk_internals.image_cache({"internals-app": "acme/app:1"}),
        root_dir=tmp_path,
    )
    capsys.readouterr()
    spec = sdk_internals.translate_app(app, context)
    assert capsys.readouterr().out == ""  # the SDK prints "VERSION: v9"; it never reaches stdout
    assert isinstance(spec, app_definition_pb2.App) and spec.metadata.id.name == "internals-app"
    command = list(spec.spec.container.command)
    assert command[:3] == ["fserve", "--version", "v9"] and command[command.index("--tgz") + 1] == "file:///b.tgz"
    assert spec.spec.container.image == "acme/app:1" and spec.spec.container.ports[0].container_port == 8089
    sdk_internals.add_app_local_sys_paths(spec, tmp_path)
    env = {e.key: e.value for e in spec.spec.container.env}
    assert set(sdk_internals.local_sys_paths(tmp_path)) <= set(env)
