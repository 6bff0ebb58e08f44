"""The import graph keeps data flowing one way: composition root -> components -> core.

The contract lives in pyproject.toml (``[tool.importlinter]``); these tests run it over the
real tree, and over a planted violation to prove the check can fail.
"""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from importlinter.cli import EXIT_STATUS_ERROR, EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("composition", "gateway", "ingest", "analytics", "firmware_sim", "sealscope")


def _lint(root: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(root)
    return lint_imports(config_filename=str(root / "pyproject.toml"), no_cache=True)


def test_layers_contract_holds_for_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _lint(ROOT, monkeypatch) == EXIT_STATUS_SUCCESS


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("sealscope", "ingest"),  # the core reaching up into a component
        ("gateway", "ingest"),  # one component into another
        ("analytics", "firmware_sim"),
        ("ingest", "composition"),  # a component into the composition root
    ],
)
def test_layers_contract_fails_on_a_wrong_way_import(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    importer: str,
    imported: str,
) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / importer / "leak.py").write_text(
        textwrap.dedent(
            f"""
            def late():
                import {imported}  # a function-level import counts too
                return {imported}
            """
        )
    )
    (tmp_path / "pyproject.toml").write_text(_contract_toml())
    assert _lint(tmp_path, monkeypatch) == EXIT_STATUS_ERROR
    assert f"{importer}.leak -> {imported}" in capsys.readouterr().out


def _contract_toml() -> str:
    """The project's import-linter section, copied from pyproject.toml unchanged."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]", f"root_packages = {json.dumps(config['root_packages'])}"]
    for contract in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in contract.items()]
    return "\n".join(lines) + "\n"
