"""Hook contracts: what each hook returns and what the plugin manager does with it.

Each hookspec in ``hookspecs.py`` is declared with ``@spec(Contract(...))``, which marks
it for pluggy (``firstresult``, ``historic``) and attaches the contract to the spec
function. Everything that enforces or documents a hook reads it from there
(``contract_of``): the plugin manager's result checks and stamping, the typed phase calls
(a required phase nobody answered), the hook reference and its meta-test. Hooks that
plugins add through ``add_hookspecs`` have no contract and are not checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import pluggy

from .errors import PluginError

Kind = Literal["firstresult", "collecting", "historic"]
F = TypeVar("F", bound=Callable[..., Any])

PROJECT = "flyte_deploy"
hookspec = pluggy.HookspecMarker(PROJECT)


@dataclass(frozen=True)
class Contract:
    """One hook's rules.

    ``kind``: ``firstresult`` (the first non-``None`` answer wins), ``collecting`` (every
    implementation's answer is gathered) or ``historic`` (replayed to late plugins).
    ``result``: the type (or types) an implementation returns besides ``None``; ``None``
    for hooks that return nothing. ``item``: the element type of a list result.
    ``required``: a firstresult call nobody answered is a ``PluginError``. ``stamped``: each
    item's ``plugin`` field is set to the name of the plugin that returned it.
    """

    kind: Kind
    result: type | tuple[type, ...] | None = None
    item: type | None = None
    required: bool = False
    stamped: bool = False

    def check(self, hook: str, result: Any, plugin: str, describe: str) -> Any:
        """``result`` as the hook's callers get it (items stamped when ``stamped``);
        a value of the wrong type is a ``PluginError`` naming ``describe`` (the plugin)."""
        if result is None or self.result is None:
            return result
        if not isinstance(result, self.result):
            raise PluginError(
                f"{describe} returned {type(result).__name__} from {hook}, expected {_names(self.result)}"
            )
        if self.item is None:
            return result
        items: Iterable[Any] = cast("Iterable[Any]", result)
        for item in items:
            if not isinstance(item, self.item):
                raise PluginError(
                    f"{describe} returned a {type(item).__name__} in the list from {hook},"
                    f" expected {self.item.__name__}"
                )
        return [dataclasses.replace(item, plugin=plugin) for item in items] if self.stamped else result

    @property
    def summary(self) -> str:
        """One line for the hook reference: the kind and what ``None`` means."""
        if self.kind == "historic":
            return "historic: replayed to plugins registered later"
        if self.kind == "collecting":
            if self.result is None:
                return "collecting: every implementation is called"
            stamped = ", each item stamped with the plugin's name" if self.stamped else ""
            return f"collecting: every plugin's list is gathered{stamped}; `None` counts as an empty list"
        if self.required:
            return "firstresult: `None` passes to the next plugin; a call no plugin answers is an error (exit 13)"
        return "firstresult: `None` passes to the next plugin; no answer at all is allowed"


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def spec(contract: Contract) -> Callable[[F], F]:
    """Declare a hookspec with its contract (pluggy options follow from ``contract.kind``)."""

    def mark(function: F) -> F:
        function.contract = contract  # type: ignore[attr-defined]
        marked: F = hookspec(firstresult=contract.kind == "firstresult", historic=contract.kind == "historic")(function)
        return marked

    return mark


def contract_of(caller: pluggy.HookCaller) -> Contract | None:
    """The contract of a hook (``None`` for a hook without one, or without a spec yet)."""
    if caller.spec is None:
        return None
    found: Contract | None = getattr(caller.spec.function, "contract", None)
    return found


__all__ = ["Contract", "contract_of", "hookspec", "spec"]
