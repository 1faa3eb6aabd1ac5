"""``include=[...]`` of task and app environments (the Flyte SDK's ``Environment.include``, and
our own SDK's): files, directories and globs bundled with every copy style, ignore rules in
included directories, the version following the included files, one-line errors naming the
environment's file:line and the entry (a missing path, a path or symlink out of the root), the
same file list as the Flyte SDK's own bundle, and the files read at run time from the bundle
(``flyte-deploy run``, ``serve``). Through the CLI and the API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import pytest

import flyte_deploy as fd
from flyte_deploy import ExitCode
from flyte_deploy.lifecycle import deploy
from flyte_deploy.testing import AUTOLOAD_VARIABLES
from flyte_deploy.types import DeployRequest

from .bundle_helpers import dry, local_archive
from .conftest import write_tree

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "tests" / "flyte_projects" / "includes"
SHOP_FILES = [
    "conf/app.yaml",
    "conf/db.yaml",
    "data/prices.csv",
    "plugins/late.py",
    "templates/.flyteignore",
    "templates/partials/header.txt",
    "templates/report.txt",
]
STATIC_FILES = ["static/css/site.css", "static/index.html"]


def members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def make_includes(root: Path) -> Path:
    """A copy of tests/flyte_projects/includes, a git work tree (the Flyte SDK applies
    .gitignore only in one), with the files its ignore rules leave out (git would not keep
    them in the repository) and a ``__pycache__``."""
    shutil.copytree(PROJECT, root)
    write_tree(
        root,
        {
            "templates/draft.tmp": "scratch\n",
            "static/cache/blob.bin": "cached\n",
            "templates/__pycache__/report.cpython-311.pyc": "x\n",
        },
    )
    (root / ".gitignore").write_text("*.tmp\nstatic/cache/\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def includes(tmp_path, monkeypatch) -> Path:
    pytest.importorskip("flyte")
    root = make_includes(tmp_path / "proj")
    monkeypatch.chdir(root)
    return root


def api_files(root: Path, file: str, copy_style: str | None = None) -> list[str]:
    with fd.open_session(root, options={"quiet": True}, dry_run=True) as session:
        result = deploy(session, DeployRequest(mode="all", path=root / file), copy_style=copy_style)
    assert result.bundle is not None
    return list(result.bundle.files)


# -- what is bundled ---------------------------------------------------------------------


@pytest.mark.parametrize("copy_style", ["loaded_modules", "all", "none"])
@pytest.mark.parametrize("file", ["shop.py", "storefront.py"])
def test_included_files_and_directories_are_bundled_with_every_copy_style(includes, file, copy_style):
    files = api_files(includes, file, copy_style)
    included = SHOP_FILES if file == "shop.py" else STATIC_FILES
    if copy_style == "loaded_modules":
        assert files == sorted([*included, file])
    elif copy_style == "none":  # the included files only: the image holds the code
        assert files == included
    else:
        assert set(SHOP_FILES + STATIC_FILES + ["conf/notes.txt", "data/other.csv"]) <= set(files)
    # ignored in an included directory: by .gitignore, .flyteignore, always (__pycache__)
    assert not {"templates/draft.tmp", "templates/partials/header.bak", "static/cache/blob.bin"} & set(files)
    assert not [name for name in files if "__pycache__" in name]


def test_the_cli_bundles_the_includes_and_a_none_bundle_needs_no_version(includes, invoke):
    out = dry(invoke, "--all", "shop.py", "--copy-style", "none")
    assert out["bundle"]["copy_style"] == "none" and out["bundle"]["files"] == len(SHOP_FILES)
    assert len(out["version"]) == 32  # derived from the included files' bundle, as the SDK does
    modules = dry(invoke, "--all", "shop.py")
    assert modules["bundle"]["files"] == len(SHOP_FILES) + 1


def test_none_without_includes_still_needs_a_version(project, invoke, monkeypatch):
    root = project({"plain.py": 'import flyte_deploy as fd\nenv = fd.TaskEnvironment("plain")\n'})
    monkeypatch.chdir(root)
    refused = invoke("deploy", "--all", "plain.py", "--copy-style", "none", "--dry-run")
    assert refused.exit_code == ExitCode.USAGE_ERROR
    assert "--copy-style none needs an explicit --version" in refused.stderr


def test_the_version_follows_the_included_files(includes, invoke):
    first = dry(invoke, "--all", "shop.py")
    assert dry(invoke, "--all", "shop.py")["version"] == first["version"]
    (includes / "templates" / "partials" / "header.txt").write_text("ACME Corp\n")
    changed = dry(invoke, "--all", "shop.py")
    assert changed["version"] != first["version"]
    assert changed["bundle"]["digest"] != first["bundle"]["digest"]
    (includes / "templates" / "draft.tmp").write_text("an ignored file changes nothing\n")
    assert dry(invoke, "--all", "shop.py")["version"] == changed["version"]
    none = dry(invoke, "--all", "shop.py", "--copy-style", "none")
    (includes / "data" / "prices.csv").write_text("item,price\napple,1\n")
    assert dry(invoke, "--all", "shop.py", "--copy-style", "none")["version"] != none["version"]


OWN = """import flyte_deploy as fd

env = fd.TaskEnvironment(
    "own",
    include={include!r},
)


@env.task
def read(name: str) -> str:
    import pathlib

    return (pathlib.Path(__file__).parent / name).read_text()
"""


def own_project(project, monkeypatch, include, files=None):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # flows.py is rewritten within a second
    root = project({"flows.py": OWN.format(include=include), **(files or {})})
    monkeypatch.chdir(root)
    return root


def rewrite(root: Path, include: list[str]) -> None:
    """``flows.py`` with another ``include``, imported afresh by the next in-process deploy."""
    (root / "flows.py").write_text(OWN.format(include=include))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


def test_our_sdk_takes_include_too_and_an_explicitly_named_file_beats_the_ignore_rules(project, invoke, monkeypatch):
    root = own_project(
        project,
        monkeypatch,
        ["data/keep.tmp", "data", "*.md"],
        {
            ".gitignore": "*.tmp\n",
            "data/keep.tmp": "named, so bundled\n",
            "data/skip.tmp": "ignored in an included directory\n",
            "data/rows.csv": "1\n",
            "README.md": "# own\n",
        },
    )
    result = invoke("deploy", "--all", "flows.py", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert members(local_archive(result.json())) == ["README.md", "data/keep.tmp", "data/rows.csv", "flows.py"]
    ran = invoke("run", "own.read", "--input", "name=data/keep.tmp")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout == 'o0 = "named, so bundled\\n"\n'
    assert (root / ".flyte-deploy").is_dir()


def test_include_must_be_a_list_of_paths(project, invoke, monkeypatch):
    own_project(project, monkeypatch, "data.csv", {"data.csv": "1\n"})
    result = invoke("deploy", "--all", "flows.py", "--dry-run")
    assert result.exit_code == ExitCode.DISCOVERY_FAILED, result.stderr
    assert "include must be a sequence of path strings, got 'data.csv'" in result.stderr


def test_included_files_that_look_like_secrets_are_warned_about_unless_allowed(project, invoke, monkeypatch):
    own_project(project, monkeypatch, [".env", "keys"], {".env": "TOKEN=1\n", "keys/id_rsa": "k\n"})
    warned = invoke("deploy", "--all", "flows.py", "--dry-run", "-q")
    assert warned.exit_code == 0, warned.stderr
    assert "warning: bundling .env, which looks like a dotenv file" in warned.stderr
    assert "warning: bundling keys/id_rsa, which looks like an SSH private key" in warned.stderr
    Path("pyproject.toml").write_text('[tool.flyte-deploy]\nbundle_allow_secrets = ["/.env", "keys/"]\n')
    allowed = invoke("deploy", "--all", "flows.py", "--dry-run", "-q")
    assert allowed.exit_code == 0 and "warning" not in allowed.stderr, allowed.stderr


# -- errors --------------------------------------------------------------------------------


def refused(invoke, fragment: str) -> str:
    result = invoke("deploy", "--all", "flows.py", "--dry-run", "-q")
    assert result.exit_code == ExitCode.BUNDLE_FAILED, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and fragment in line, line
    assert "flows.py:3: environment own: include " in line, line  # the environment's file:line
    return line


def test_a_missing_path_or_a_glob_matching_nothing_is_an_error(project, invoke, monkeypatch):
    root = own_project(project, monkeypatch, ["data/missing.csv"])
    assert refused(invoke, f"include 'data/missing.csv': {root}/data/missing.csv does not exist")
    rewrite(root, ["conf/*.yaml"])
    refused(invoke, f"include 'conf/*.yaml': no file matches {root}/conf/*.yaml")


def test_a_path_outside_the_root_dir_is_an_error_telling_to_raise_it(project, invoke, monkeypatch, tmp_path):
    (tmp_path / "shared.csv").write_text("1\n")
    own_project(project, monkeypatch, ["../shared.csv"])
    line = refused(invoke, f"include '../shared.csv': {tmp_path}/shared.csv is outside the root dir")
    assert line.endswith("pass --root-dir with a directory holding it")
    rewrite(Path.cwd(), [str(tmp_path / "shared.csv")])  # absolute
    refused(invoke, "is outside the root dir")
    rewrite(Path.cwd(), ["../*.csv"])  # a glob reaching out
    refused(invoke, f"include '../*.csv': {tmp_path}/*.csv is outside the root dir")
    ok = invoke("deploy", "--all", str(Path.cwd() / "flows.py"), "--root-dir", str(tmp_path), "--dry-run", "-q")
    assert ok.exit_code == 0, ok.stderr  # raised root: the glob's file is in


def test_a_symlink_out_of_the_root_is_an_error_never_followed(project, invoke, monkeypatch, tmp_path):
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    root = own_project(project, monkeypatch, ["data.csv"])
    (root / "data.csv").symlink_to(secret)
    refused(invoke, f"include 'data.csv': data.csv is a symlink to {secret}, outside the root dir")
    # a link met in an included directory, a link to an outside directory, and one matched by a glob
    rewrite(root, ["static"])
    (root / "static").mkdir()
    (root / "static" / "index.html").write_text("<h1>ok</h1>\n")
    (root / "static" / "leak").symlink_to(secret.parent)
    refused(invoke, f"include 'static': static/leak is a symlink to {secret.parent}, outside the root dir")
    (root / "static" / "leak").unlink()
    (root / "static" / "leak.html").symlink_to(secret)
    refused(invoke, "static/leak.html is a symlink to")
    rewrite(root, ["static/*.html"])
    refused(invoke, "include 'static/*.html': static/leak.html is a symlink to")
    rewrite(root, ["linked"])
    (root / "linked").symlink_to(secret.parent)
    refused(invoke, f"include 'linked': linked is a symlink to {secret.parent}, outside the root dir")
    # an ignored link is left out, as the ignore rules say, and never followed
    rewrite(root, ["static"])
    (root / ".gitignore").write_text("leak.html\n")
    result = invoke("deploy", "--all", "flows.py", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert members(local_archive(result.json())) == ["flows.py", "static/index.html"]


def test_version_control_stores_and_ignored_directories_are_refused(project, invoke, monkeypatch):
    root = own_project(project, monkeypatch, [".git/config"], {".git/config": "[core]\n", "build/x.txt": "x\n"})
    refused(invoke, "include '.git/config': .git/config is never bundled")
    rewrite(root, [".flyte-deploy"])
    (root / ".flyte-deploy").mkdir()
    refused(invoke, "include '.flyte-deploy': .flyte-deploy is left out of every bundle")
    rewrite(root, ["build"])
    (root / ".gitignore").write_text("# build output\nbuild/\n")
    rule = f"{root}/.gitignore:2:build/"
    refused(invoke, f"include 'build': build is left out of every bundle: its directory build is ignored by {rule}")
    (root / ".gitignore").write_text("build/*\n")
    refused(invoke, "include 'build': build holds no file to bundle")
    (root / "data.csv").symlink_to(root / ".git" / "config")
    rewrite(root, ["data.csv"])
    refused(invoke, "data.csv is a symlink to")


def test_a_special_file_is_refused_and_never_opened(project, invoke, monkeypatch):
    root = own_project(project, monkeypatch, ["pipe"])
    os.mkfifo(root / "pipe")
    refused(invoke, "include 'pipe': pipe is not a regular file or a directory")


def test_a_flyte_environment_error_names_its_file_and_line(includes, invoke):
    (includes / "shop.py").write_text((includes / "shop.py").read_text().replace("data/prices.csv", "data/gone.csv"))
    result = invoke("deploy", "--all", "shop.py", "--dry-run", "-q")
    assert result.exit_code == ExitCode.BUNDLE_FAILED
    assert result.stderr.strip() == (
        f"error: {includes}/shop.py:13: environment includes-shop: include 'data/gone.csv':"
        f" {includes}/data/gone.csv does not exist"
    )


# -- run time: the files come from the bundle ------------------------------------------------


def test_flyte_tasks_read_the_included_files_from_their_bundle(includes, invoke):
    result = invoke("deploy", "--all", "shop.py", "-q")
    assert result.exit_code == 0, result.stderr
    for name in ("shop.py", "data", "templates", "conf", "plugins"):  # the run must use the bundle
        target = includes / name
        target.unlink() if target.is_file() else shutil.rmtree(target)
    total = invoke("run", "includes-shop.total")
    assert total.exit_code == 0, total.stderr
    assert total.stdout == "o0 = 3.75\n"
    render = invoke("run", "includes-shop.render", "--input", "name=Ann")
    assert render.exit_code == 0, render.stderr
    assert render.stdout == 'o0 = "ACME Report for Ann."\n'
    settings = invoke("run", "includes-shop.settings", "--output", "json")
    assert settings.exit_code == 0, settings.stderr
    assert settings.json()["outputs"] == {"o0": ["app.yaml", "db.yaml", "late"]}


def test_an_app_bundle_holds_its_included_static_directory(includes, invoke):
    result = invoke("deploy", "--all", "storefront.py", "-q", "--output", "json")
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert [e["name"] for e in out["environments"]] == ["includes-storefront"]
    assert members(local_archive(out)) == [*STATIC_FILES, "storefront.py"]


@pytest.mark.servers
def test_a_served_app_reads_its_included_static_files(includes, invoke, monkeypatch, tmp_path):
    pytest.importorskip("uvicorn")
    from flyte_deploy.serving import serve_app

    assert invoke("deploy", "--all", "storefront.py", "-q").exit_code == 0
    shutil.rmtree(includes / "static")
    with fd.open_session(includes) as session:
        assert session.backend.app_spec is not None
        app = session.backend.app_spec(session.config, "includes-storefront")
    monkeypatch.chdir(tmp_path)
    pages: list[str] = []

    def ready(url: str) -> None:
        for path in ("/", "/css/site.css"):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                pages.append(response.read().decode())
        os.kill(os.getpid(), signal.SIGINT)

    serve_app(app, port=0, on_ready=ready)
    assert pages == [(PROJECT / "static" / "index.html").read_text(), (PROJECT / "static/css/site.css").read_text()]


# -- the same files as the Flyte SDK ---------------------------------------------------------

SDK_BUNDLE = r"""
import importlib, json, os, pathlib, sys
root = pathlib.Path(sys.argv[1]); module = sys.argv[2]
import flyte
import flyte._code_bundle as code_bundle
from flyte._environment import Environment
built = []
build = code_bundle.build_code_bundle
async def recording(*args, **kwargs):  # the bundle flyte.deploy builds, as it is
    built.append(await build(*args, **kwargs))
    return built[-1]
code_bundle.build_code_bundle = recording
flyte.init(endpoint="dns:///localhost:1", insecure=True, project="p", domain="development", root_dir=root)
envs = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, Environment)]
files = {}
for style in ("loaded_modules", "all", "none"):
    built.clear()
    flyte.deploy(*envs, dry_run=True, copy_style=style)
    files[style] = sorted(os.path.relpath(f, root) for b in built for f in b.files)
print("@@JSON@@" + json.dumps(files))
"""

OUR_BUNDLE = r"""
import json, pathlib, sys
root = pathlib.Path(sys.argv[1]); file = sys.argv[2]
from flyte_deploy.api import open_session
from flyte_deploy.lifecycle import deploy
from flyte_deploy.types import DeployRequest
files = {}
with open_session(root, options={"quiet": True}, dry_run=True) as session:
    for style in ("loaded_modules", "all", "none"):
        result = deploy(session, DeployRequest(mode="all", path=root / file), copy_style=style)
        files[style] = list(result.bundle.files)
print("@@JSON@@" + json.dumps(files))
"""


def bundle_lists(script: str, root: Path, name: str, extra: dict[str, str]) -> dict[str, list[str]]:
    """The bundle file list of each copy style, from a fresh process (as tests/tools/flyte_parity)."""
    with tempfile.TemporaryDirectory(prefix="include-parity-home-") as home:
        env = {
            "PATH": "/usr/bin:/bin",  # no ruff: the SDK's loaded_modules uses sys.modules only
            "HOME": home,
            "DO_NOT_TRACK": "1",
            "FLYTE_DISABLE_TELEMETRY": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **{k: os.environ[k] for k in AUTOLOAD_VARIABLES if k in os.environ},
            **extra,
        }
        proc = subprocess.run(
            [sys.executable, "-c", script, str(root), name],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert proc.returncode == 0 and "@@JSON@@" in proc.stdout, proc.stderr[-4000:]
    return json.loads(proc.stdout.split("@@JSON@@", 1)[1])


#: what differs from the Flyte SDK's bundle, by copy style (docs/bundles.md, "include"): with
#: copy style none the SDK applies no ignore rule to an included directory, we do
SDK_ONLY = {
    "none": {
        "templates/__pycache__/report.cpython-311.pyc",
        "templates/draft.tmp",
        "templates/partials/header.bak",
        "static/cache/blob.bin",
    }
}


@pytest.mark.parametrize("module", ["shop", "storefront"])
def test_the_bundle_holds_the_files_the_flyte_sdk_bundles(tmp_path, module):
    pytest.importorskip("flyte")
    pytest.importorskip("fastapi")
    root = make_includes(tmp_path / "proj")
    theirs = bundle_lists(SDK_BUNDLE, root, module, {})
    ours = bundle_lists(OUR_BUNDLE, root, f"{module}.py", {"PYTHONPATH": str(REPO / "src")})
    for style, files in theirs.items():
        expected = sorted(set(files) - SDK_ONLY.get(style, set()))
        assert ours[style] == expected, style
        assert set(files) - set(ours[style]) <= SDK_ONLY.get(style, set())
