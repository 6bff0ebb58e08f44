"""The exception tree in sealscope.errors is the whole tree: no package defines its own."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from sealscope import errors

PACKAGES = ("sealscope", "ingest", "analytics", "gateway", "firmware_sim", "composition")


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


@pytest.fixture(scope="module")
def every_module_imported() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.endswith("__main__"):
                continue  # runs the CLI on import
            importlib.import_module(info.name)


@pytest.mark.usefixtures("every_module_imported")
def test_errors_every_sealscope_error_lives_in_the_errors_module() -> None:
    ours = {
        c for c in _all_subclasses(errors.SealscopeError) if c.__module__.split(".")[0] in PACKAGES
    }
    assert len(ours) >= 20  # the walk really imported the packages
    elsewhere = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in ours if c.__module__ != errors.__name__
    )
    assert elsewhere == []


def test_errors_docstring_tree_names_every_exception() -> None:
    names = [n for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    tree = (errors.__doc__ or "").split("SealscopeError", 1)[1]  # below the root
    missing = [n for n in names if n != "SealscopeError" and f" {n} " not in tree]
    assert missing == []
