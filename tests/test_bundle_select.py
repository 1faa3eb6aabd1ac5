"""Which files a bundle holds: ``all`` (ignore files, always-skipped directories,
symlinks) and ``loaded_modules`` (imported modules under the root dir)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flyte_deploy.bundle.select import all_files, loaded_module_files
from flyte_deploy.errors import BundleError

from .bundle_helpers import write

GITIGNORE = """\
# a comment, then patterns of every kind
*.log
!keep.log
/build
docs/**/tmp
cache/
a/**/b.txt
\\#hash.txt
trailing.txt\x20\x20\x20
*.tmp
!important.tmp
out/
!out/keep.txt
data/*
!data/keep/
data/keep/*.bin
**/generated
literal[ab].txt
"""

TREE = [
    "main.py",
    "x.log",
    "keep.log",
    "sub/a.log",
    "sub/keep.log",
    "sub/deeper/d.log",
    "sub/deeper/ok.py",
    "build/x.py",
    "src/build/y.py",
    "docs/tmp/a.md",
    "docs/a/b/tmp/c.md",
    "docs/tmpx/d.md",
    "cache/f",
    "sub/cache/f",
    "x/cache",
    "a/b.txt",
    "a/x/y/b.txt",
    "#hash.txt",
    "trailing.txt",
    "f.tmp",
    "important.tmp",
    "out/keep.txt",
    "data/a.csv",
    "data/keep/k.csv",
    "data/keep/k.bin",
    "p/generated/g.py",
    "q/generated",
    "literala.txt",
    "literalc.txt",
    "sub/local.txt",
    "sub/x/local.txt",
    "sub/nested/n.py",
    "other/nested/n.py",
]


def make_ignore_tree(root: Path) -> None:
    write(root, {name: f"{name}\n" for name in TREE})
    (root / ".gitignore").write_text(GITIGNORE)
    write(root, {"sub/.gitignore": "!*.log\n/local.txt\nnested/\n", "sub/deeper/.gitignore": "*.log\n"})


def test_all_honours_nested_gitignore_exactly_like_git(tmp_path: Path) -> None:
    """git itself is the oracle: the files ``all`` keeps are the untracked, non-ignored
    files ``git ls-files --others --exclude-standard`` lists."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    make_ignore_tree(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = sorted(name for name in listed.split("\0") if name)
    assert sorted(all_files(tmp_path)) == expected
    # and the rules did bite: spot checks of each kind
    kept = set(all_files(tmp_path))
    assert {
        "keep.log",
        "sub/a.log",
        "src/build/y.py",
        "x/cache",
        "docs/tmpx/d.md",
        "important.tmp",
        "data/keep/k.csv",
        "literalc.txt",
        "sub/x/local.txt",
        "other/nested/n.py",
    } <= kept
    assert (
        not {
            "x.log",
            "sub/deeper/d.log",
            "build/x.py",
            "docs/a/b/tmp/c.md",
            "cache/f",
            "sub/cache/f",
            "a/x/y/b.txt",
            "#hash.txt",
            "trailing.txt",
            "f.tmp",
            "out/keep.txt",
            "data/a.csv",
            "data/keep/k.bin",
            "p/generated/g.py",
            "q/generated",
            "literala.txt",
            "sub/local.txt",
            "sub/nested/n.py",
        }
        & kept
    )


def test_a_root_inside_a_git_work_tree_honours_the_ignore_files_above_it(tmp_path: Path) -> None:
    """A monorepo deployed with --root-dir services/a: the repository's .gitignore files
    above the root apply, as git applies them (git is the oracle again)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    write(
        repo,
        {
            ".gitignore": "*.log\n/services/a/local.txt\nsecret.env\nbuild/\n",
            "services/.gitignore": "!keep.log\n/a/tmp/\n",
            "services/a/.gitignore": "*.bak\n",
            "services/a/app.py": "",
            "services/a/x.log": "",
            "services/a/keep.log": "",
            "services/a/local.txt": "",
            "services/a/sub/local.txt": "",
            "services/a/secret.env": "",
            "services/a/build/out.py": "",
            "services/a/tmp/t.py": "",
            "services/a/old.bak": "",
            "services/b/other.py": "",
        },
    )
    env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    root = repo / "services" / "a"
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert sorted(all_files(root)) == sorted(n for n in listed.split("\0") if n)
    assert sorted(all_files(root)) == [".gitignore", "app.py", "keep.log", "sub/local.txt"]


def test_flyteignore_adds_patterns_and_can_reinclude(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "",
            "secrets.env": "TOKEN=x\n",
            "big/blob.bin": "x",
            "sub/model.ckpt": "m",
            "sub/weights.ckpt": "w",
            "sub/.flyteignore": "*.ckpt\n!weights.ckpt\n",
            ".gitignore": "*.env\nbig/\n",
            ".flyteignore": "!secrets.env\n",
        },
    )
    assert sorted(all_files(tmp_path)) == [
        ".flyteignore",
        ".gitignore",
        "app.py",
        "secrets.env",
        "sub/.flyteignore",
        "sub/weights.ckpt",
    ]


def test_all_always_skips_vcs_caches_virtualenvs_and_the_deploy_store(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "",
            ".git/HEAD": "ref",
            "pkg/__pycache__/m.cpython-311.pyc": "",
            "pkg/m.py": "",
            "pkg/stale.pyc": "",
            "venv/pyvenv.cfg": "home = /usr",
            "venv/lib/site.py": "",
            "conda/conda-meta/history": "",
            "conda/lib/x.py": "",
            ".flyte-deploy/bundles/x.tar.gz": "",
            "sub/.flyte-deploy/bundles/y.tar.gz": "",
            ".mypy_cache/CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n",
            ".mypy_cache/x.json": "",
            "notcache/CACHEDIR.TAG": "not a real tag\n",
            "store/envs/x.json": "",
            "sub/.git": "gitdir: ../.git",
            ".env.example": "A=1\n",
        },
    )
    assert sorted(all_files(tmp_path, skip=("store",))) == [
        ".env.example",
        "app.py",
        "notcache/CACHEDIR.TAG",
        "pkg/m.py",
    ]


def test_invalid_ignore_pattern_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "sub/.gitignore": "*.log\n!\n"})
    with pytest.raises(BundleError, match=r"sub/\.gitignore:2: invalid ignore pattern '!'"):
        all_files(tmp_path)


def test_symlinks_inside_root_are_followed_outside_never(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(root, {"lib/real.py": "REAL = 1\n", "conf/settings.toml": "a = 1\n"})
    write(outside, {"secret.txt": "do not ship\n", "pkg/mod.py": ""})
    (root / "alias.py").symlink_to("lib/real.py")
    (root / "conf_link").symlink_to("conf", target_is_directory=True)
    (root / "lib" / "loop").symlink_to("..", target_is_directory=True)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside / "pkg", target_is_directory=True)
    (root / "dangling.py").symlink_to(root / "missing.py")
    write(root, {".git/config": "[remote]\n url = https://user:token@example.com/r.git\n"})
    (root / "gitconfig").symlink_to(".git/config")
    (root / "gitdir").symlink_to(".git", target_is_directory=True)
    files = all_files(root)
    assert sorted(files) == ["alias.py", "conf/settings.toml", "conf_link/settings.toml", "lib/real.py"]
    assert Path(files["alias.py"]).read_text() == "REAL = 1\n"


# -- loaded_modules ---------------------------------------------------------------------


@pytest.fixture
def importer(tmp_path: Path):
    """Import modules from a temporary root; forget them afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(tmp_path))

    def load(*names: str) -> list[str]:
        importlib.invalidate_caches()
        for name in names:
            importlib.import_module(name)
        return [n for n in sys.modules if n not in before]

    yield load
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_loaded_modules_takes_imported_sources_and_their_packages(tmp_path: Path, importer) -> None:
    write(
        tmp_path,
        {
            "lmapp/__init__.py": "",
            "lmapp/core/__init__.py": "",
            "lmapp/core/deep/__init__.py": "",
            "lmapp/core/deep/leaf.py": "import json\nimport lmhelper\n",
            "lmhelper.py": "",
            "lmapp/unused.py": "",
            "data.csv": "1,2\n",
            "lmnamespace/mod.py": "",
        },
    )
    loaded = importer("lmapp.core.deep.leaf", "lmnamespace.mod")
    files = loaded_module_files(loaded, tmp_path)
    assert sorted(files) == [
        "lmapp/__init__.py",
        "lmapp/core/__init__.py",
        "lmapp/core/deep/__init__.py",
        "lmapp/core/deep/leaf.py",
        "lmhelper.py",
        "lmnamespace/mod.py",
    ]


def test_loaded_modules_adds_package_inits_even_when_not_listed(tmp_path: Path, importer) -> None:
    write(tmp_path, {"lmpkg2/__init__.py": "", "lmpkg2/sub/__init__.py": "", "lmpkg2/sub/m.py": ""})
    importer("lmpkg2.sub.m")
    assert sorted(loaded_module_files(["lmpkg2.sub.m"], tmp_path)) == [
        "lmpkg2/__init__.py",
        "lmpkg2/sub/__init__.py",
        "lmpkg2/sub/m.py",
    ]


def test_loaded_modules_skips_site_packages_virtualenvs_store_and_outside(tmp_path: Path, importer) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(
        root,
        {
            "lmmain.py": "",
            "venv/pyvenv.cfg": "",
            "venv/lib/lmvenvmod.py": "",
            "vendor/site-packages/lmsitemod.py": "",
            ".flyte-deploy/lmstoremod.py": "",
        },
    )
    write(outside, {"lmoutside.py": "", "lmlinked.py": ""})
    (root / "lmlink.py").symlink_to(outside / "lmlinked.py")
    for extra in ("venv/lib", "vendor/site-packages", ".flyte-deploy", str(outside)):
        sys.path.insert(0, str(root / extra))
    try:
        importer_root = str(root)
        sys.path.insert(0, importer_root)
        loaded = importer("lmmain", "lmvenvmod", "lmsitemod", "lmstoremod", "lmoutside", "lmlink")
        assert sorted(loaded_module_files(loaded, root)) == ["lmmain.py"]
    finally:
        for extra in ("venv/lib", "vendor/site-packages", ".flyte-deploy", str(outside), ""):
            path = str(root / extra) if extra else str(root)
            if path in sys.path:
                sys.path.remove(path)


def test_loaded_modules_never_bundles_flyte_deploy_itself(tmp_path: Path) -> None:
    import flyte_deploy

    package_root = Path(flyte_deploy.__file__).resolve().parent.parent
    files = loaded_module_files([n for n in sys.modules if n.startswith("flyte_deploy")], package_root)
    assert files == {}
