"""Issue 13, parts 4 and 5, through the CLI: no credential in any error, traceback or JSON
document; every user or machine problem is one clear line with its own exit code, never a
silent exit 0, an internal error (3) or a plugin crash (13)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from flyte_deploy.cli import run_cli
from flyte_deploy.errors import ExitCode, register_secret, scrub

ACCESS_KEY, SECRET_KEY = "AKIAFLYTEDEPLOYTEST1", "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"
TOKEN = "tok-3f9a8b7c6d5e4f3a2b1c"

APP = """
import flyte_deploy as fd

env = fd.TaskEnvironment(name="app")

@env.task
def work(x: int) -> int:
    return x + 1
"""


def one_error_line(run) -> str:
    """The run's single ``error:`` line (and no traceback)."""
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    return lines[0]


def assert_no_secret(run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.stdout + run.stderr, f"{secret!r} leaked:\n{run.stdout}\n{run.stderr}"


# -- part 4: secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--store", "FLYTE_DEPLOY_STORAGE", "config.yaml"])
def test_a_storage_url_with_credentials_is_refused_without_showing_them(deploy_project, monkeypatch, how):
    url = f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/bundles"
    deploy_project({"app.py": APP})
    args: tuple[str, ...] = ()
    if how == "--store":
        args = ("--store", url)
    elif how == "FLYTE_DEPLOY_STORAGE":
        monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", url)
    else:
        deploy_project({"config.yaml": f"storage: {url}\n"})
    for command in (deploy_project.deploy, deploy_project.check):
        run = command("app.py", "env", *args).assert_exit(ExitCode.USAGE_ERROR)
        assert "URL" in one_error_line(run) and "holds credentials" in one_error_line(run)
        assert_no_secret(run, ACCESS_KEY, SECRET_KEY)
    assert not deploy_project.store.exists()


def test_an_endpoint_with_credentials_never_shows_them(deploy_project, monkeypatch, tmp_path):
    deploy_project({"app.py": APP})
    monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", (tmp_path / "bundles").as_uri())
    monkeypatch.setenv("FLYTE_DEPLOY_ENDPOINT", f"http://deployer:{SECRET_KEY}@127.0.0.1:1")
    monkeypatch.setenv("FLYTE_DEPLOY_INSECURE", "true")
    monkeypatch.setenv("FLYTE_DEPLOY_RETRIES", "0")
    run = deploy_project.deploy("app.py", "env", "--backend", "remote")
    assert run.exit_code not in (0, ExitCode.INTERNAL_ERROR, ExitCode.PLUGIN_ERROR)
    assert "***@127.0.0.1:1" in one_error_line(run)
    assert_no_secret(run, SECRET_KEY)


def test_a_plugin_error_quoting_a_token_or_a_signed_url_is_scrubbed(deploy_project, monkeypatch):
    monkeypatch.setenv("FLYTE_DEPLOY_TOKEN", TOKEN)
    deploy_project(
        {
            "app.py": APP,
            "deployconf.py": f"""
        import os
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan):
            raise RuntimeError("refused " + os.environ["FLYTE_DEPLOY_TOKEN"] + " at"
                               " https://cdn.example/x?X-Amz-Signature=abcdef0123&X-Amz-Credential={ACCESS_KEY}"
                               " with Authorization: Bearer {TOKEN}x")
    """,
        }
    )
    run = deploy_project.deploy("app.py", "env").assert_exit(ExitCode.PLUGIN_ERROR)
    line = one_error_line(run)
    assert "X-Amz-Signature=***" in line and "Bearer ***" in line and "refused ***" in line
    assert_no_secret(run, TOKEN, ACCESS_KEY, "abcdef0123")


def test_an_internal_error_traceback_is_scrubbed(capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)

    @click.command()
    def broken() -> None:
        raise RuntimeError(f"boom with {SECRET_KEY} and s3://{ACCESS_KEY}:pw@bucket")

    assert run_cli(broken, []) == ExitCode.INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom with *** and s3://***@bucket" in err
    assert SECRET_KEY not in err and ACCESS_KEY not in err


def test_json_output_carries_no_secret(deploy_project, monkeypatch):
    """A registered secret (here a storage option) that reaches the JSON document is masked."""
    deploy_project(
        {
            "app.py": APP,
            "pyproject.toml": f"""
        [tool.flyte-deploy.storage_options]
        secret = "{SECRET_KEY}"
    """,
        }
    )
    register_secret(SECRET_KEY)
    run = deploy_project.deploy("app.py", "env", "--version", f"v-{SECRET_KEY}")
    assert_no_secret(run, SECRET_KEY)


def test_scrub_covers_every_form() -> None:
    text = (
        f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/k dns:///u:p@host:443 https://u@h/?token=abc123&x=1"
        f" Basic dXNlcjpwYXNz and {TOKEN}"
    )
    assert scrub(text, [TOKEN]) == (
        "s3://***@bucket/k dns:///***@host:443 https://***@h/?token=***&x=1 Basic *** and ***"
    )
    assert (
        scrub("no secret here: /home/user/file.py:12 user@example.com")
        == "no secret here: /home/user/file.py:12 user@example.com"
    )


# -- part 5: exit codes tell the truth ---------------------------------------------------------


def test_sys_exit_in_a_user_module_at_import_is_a_discovery_error(deploy_project):
    deploy_project({"app.py": APP + "\nimport sys\nsys.exit(0)\n"})
    for run in (deploy_project.deploy("app.py", "env"), deploy_project.run_subprocess("deploy", "app.py", "env")):
        run.assert_exit(ExitCode.DISCOVERY_FAILED)
        assert "app.py:10" in one_error_line(run) and "SystemExit" in one_error_line(run)
    assert not deploy_project.store.exists()


def test_sys_exit_in_deployconf_at_import_names_the_file_and_line(deploy_project):
    deploy_project({"app.py": APP, "deployconf.py": "import sys\n\nsys.exit(0)\n"})
    for args in (("deploy", "app.py", "env"), ("plugins",)):
        run = deploy_project.run_subprocess(*args).assert_exit(ExitCode.PLUGIN_ERROR)
        assert "deployconf.py:3: SystemExit: 0" in one_error_line(run)
    assert not deploy_project.store.exists()


def test_sys_exit_in_a_hook_names_the_plugin_and_the_hook(deploy_project):
    deploy_project(
        {
            "app.py": APP,
            "deployconf.py": """
        import sys
        import flyte_deploy as fd

        @fd.hookimpl
        def compute_version(session, plan):
            sys.exit(0)
    """,
        }
    )
    run = deploy_project.run_subprocess("deploy", "app.py", "env").assert_exit(ExitCode.PLUGIN_ERROR)
    assert "plugin 'deployconf'" in one_error_line(run) and "sys.exit(0) in compute_version" in one_error_line(run)
    assert not deploy_project.store.exists()


def test_sys_exit_from_elsewhere_is_an_error_naming_where(capsys, tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text("import sys\n\ndef leave():\n    sys.exit(3)\n")
    namespace: dict = {}
    exec(compile(user.read_text(), str(user), "exec"), namespace)

    @click.command()
    def command() -> None:
        namespace["leave"]()

    assert run_cli(command, []) == ExitCode.USAGE_ERROR
    assert capsys.readouterr().err == f"error: {user}:4: sys.exit(3) ended flyte-deploy\n"


def test_printing_at_import_does_not_corrupt_json_output(deploy_project):
    deploy_project(
        {"app.py": 'print("hello from app.py")\n' + APP, "deployconf.py": 'print("hello from deployconf")\n'}
    )
    for run in (
        deploy_project.deploy("app.py", "env"),
        deploy_project.check("app.py", "env"),
        deploy_project.run_subprocess("deploy", "app.py", "env", "--output", "json"),
        deploy_project.run_subprocess("plugins", "--json"),
    ):
        run.assert_ok()
        assert isinstance(json.loads(run.stdout), dict)
        assert "hello from deployconf" in run.stderr


def test_an_integer_default_beyond_int64_names_the_parameter(deploy_project):
    deploy_project(
        {
            "app.py": APP.replace("def work(x: int)", "def work(x: int = 2**70)")
            + "\n@env.task\ndef many(xs: list[int] = [1, -2**64]) -> int:\n    return 0\n"
        }
    )
    run = deploy_project.deploy("app.py", "env").assert_exit(ExitCode.SERIALIZATION_FAILED)
    line = one_error_line(run)
    assert "app.py:" in line and "parameter 'x'" in line and "does not fit in 64 bits" in line
    huge = deploy_project.new("huge", {"app.py": APP.replace("def work(x: int)", "def work(x: int = 10**5000)")})
    # with a derived version too: hashing the signature must not trip over Python's 4,300-digit str limit
    assert "of 16610 bits does not fit" in one_error_line(huge.deploy("app.py", "env").assert_exit(8))


def test_depends_on_replaced_by_a_non_environment_is_a_dependency_error(deploy_project):
    deploy_project({"app.py": APP + '\nbase = fd.TaskEnvironment(name="base")\nenv.depends_on = [base, "base"]\n'})
    run = deploy_project.deploy("app.py", "env").assert_exit(ExitCode.DEPENDENCY_FAILED)
    assert one_error_line(run) == (
        f"error: environment 'app' ({deploy_project.root / 'app.py'}:3): depends_on"
        " holds 'base' (str), not an environment"
    )
    other = deploy_project.new("other", {"app.py": APP + "\nenv.depends_on = 7\n"})
    assert "depends_on must be a list of environments, got int" in one_error_line(
        other.deploy("app.py", "env").assert_exit(ExitCode.DEPENDENCY_FAILED)
    )


def test_a_store_that_cannot_be_written_is_an_environment_error(deploy_project, tmp_path, monkeypatch):
    deploy_project({"app.py": APP})
    monkeypatch.setenv("FLYTE_DEPLOY_STORAGE", (tmp_path / "bundles").as_uri())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for store in (blocker / "store", Path("/sys/flyte-deploy-store")):
        run = deploy_project.deploy("app.py", "env", "--store", store.as_uri()).assert_exit(ExitCode.ENVIRONMENT_FAILED)
        assert one_error_line(run).startswith(f"error: {store}")
    # the bundle storage under an unwritable store: the upload phase says so (permanent, not retried)
    monkeypatch.delenv("FLYTE_DEPLOY_STORAGE")
    run = deploy_project.deploy("app.py", "env", "--store", (blocker / "store").as_uri())
    line = one_error_line(run.assert_exit(ExitCode.UPLOAD_FAILED))
    assert "uploading the bundle to" in line and "Not a directory" in line and "attempt" not in line


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs, mounted and filled to the last byte (needs root, as CI runs)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {done.stderr.strip()}")
    try:
        with (mount / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_its_own_clear_error_and_is_not_retried(deploy_project, full_disk):
    deploy_project({"app.py": APP})
    run = deploy_project.deploy("app.py", "env", "--store", full_disk.as_uri()).assert_exit(ExitCode.DISK_FULL)
    line = one_error_line(run)
    assert str(full_disk) in line and "No space left on device; free some space and run again" in line
    assert "attempt" not in line
    assert not (full_disk / "environments").exists()


@pytest.fixture
def deployed(deploy_project):
    deploy_project({"app.py": APP}).deploy("app.py", "env", "--version", "v1").assert_ok()
    return deploy_project


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["x=" + "[" * 100_000 + "]" * 100_000], "input 'x': the value is nested too deeply to convert"),
        (["x=1", "x=2"], "--input x is given twice"),
        (["x=" + "9" * 5000], "input 'x':"),
        (["x=" + str(2**64)], "does not fit in 64 bits"),
    ],
)
def test_bad_inputs_are_one_line_run_errors(deployed, inputs, message):
    args = [arg for value in inputs for arg in ("--input", value)]
    run = deployed.run_cli("run", "app.work", *args, "--root-dir", str(deployed.root)).assert_exit(ExitCode.RUN_FAILED)
    line = one_error_line(run)
    assert message in line and len(line) < 300


def test_a_relative_work_dir_is_made_in_the_current_directory(deployed):
    run = deployed.run_subprocess("run", "app.work", "--input", "x=41", "--work-dir", "runs/one", "--output", "json")
    assert run.assert_ok().json["outputs"] == {"o0": 42}
    assert (deployed.root / "runs" / "one" / "work").is_dir()


@pytest.mark.parametrize("name", ["pyproject.toml", "config.yaml"])
def test_a_config_file_that_is_not_utf8_names_the_file_and_line(deploy_project, name):
    deploy_project({"app.py": APP, name: "# ok\n# caf\xe9\n".encode("latin-1")})
    for run in (
        deploy_project.deploy("app.py", "env"),
        deploy_project.run_cli("ls", "--root-dir", str(deploy_project.root)),
    ):
        run.assert_exit(ExitCode.USAGE_ERROR)
        assert one_error_line(run) == (
            f"error: {deploy_project.root / name}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
        )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("pyproject.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n", "invalid TOML"),
        ("pyproject.toml", "tool = 3\n", "[tool] must be a table"),
        ("config.yaml", "flyte-deploy: &a {x: *a}\n", "refers to itself"),
    ],
)
def test_hostile_config_files_are_usage_errors(deploy_project, name, text, message):
    deploy_project({"app.py": APP, name: text})
    run = deploy_project.deploy("app.py", "env").assert_exit(ExitCode.USAGE_ERROR)
    assert message in one_error_line(run)


def test_environment_secret_variables_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/root/.aws/credentials")
    assert (
        scrub("login correct-horse-battery from /root/.aws/credentials", environ=dict(os.environ))
        == "login *** from /root/.aws/credentials"
    )
