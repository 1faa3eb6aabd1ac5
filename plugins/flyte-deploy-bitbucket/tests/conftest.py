"""Fixtures of the plugin's tests. In-process tests load the plugin module from its source
file (not via sys.path, so no stray metadata makes its entry point visible to the rest of
the suite); the install tests pip-install it into a throwaway virtualenv."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bitbucket_plugin() -> ModuleType:
    """The plugin module, imported from this checkout's source."""
    name = "flyte_deploy_bitbucket"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PLUGIN_DIR / "src" / name / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
