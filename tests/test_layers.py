"""The shape of the house: import-linter's contracts (pyproject.toml) hold, and no meterdesk module imports one that imports it back."""

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from importlib.util import find_spec
from pathlib import Path

import grimp
from packaging.requirements import Requirement

import meterdesk

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# The sources under test, which need not be the installed ones.
SOURCES = Path(meterdesk.__file__).resolve().parents[1]


def contracts() -> dict[str, dict]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_the_import_contracts_hold():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCES), os.environ.get("PYTHONPATH", "")]),
                   "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         str(PYPROJECT), "--no-cache"],
        cwd=PYPROJECT.parent, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in run.stdout, run.stdout


def import_names(requirement: Requirement) -> set[str]:
    """The top-level packages a distribution installs (its own name when it is not installed here)."""
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    names = {top for top, distributions in packages_distributions().items()
             if normal(requirement.name) in map(normal, distributions)}
    return names or {requirement.name.lower()}


def test_the_domain_contract_forbids_every_runtime_dependency():
    forbidden = set(contracts()["pure-domain"]["forbidden_modules"])
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    unforbidden = sorted(
        requirement.name for requirement in map(Requirement, dependencies) if not import_names(requirement) & forbidden
    )
    assert unforbidden == [], "add their import names to the pure-domain contract in pyproject.toml"


def meterdesk_graph() -> grimp.ImportGraph:
    # grimp counts an import inside a function as well as one at the top: both are dependencies.
    return grimp.build_graph("meterdesk", cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that reach one another through imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    lines = []
    for importer in group:
        source = Path(find_spec(importer).origin).read_text(encoding="utf-8").splitlines()
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & set(group)):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                where = "inside a function" if source[detail["line_number"] - 1][:1].isspace() else "at the top"
                lines.append(f"{importer}:{detail['line_number']} imports {imported} ({where})")
    return "\n".join(lines)


def test_no_module_imports_one_that_imports_it_back():
    graph = meterdesk_graph()
    assert "meterdesk.services.recording" in graph.modules  # the graph is of the whole package
    found = cycles(graph)
    assert found == [], "\n\n".join(describe(graph, group) for group in found)


def test_the_cycle_check_would_catch_a_cycle():
    graph = meterdesk_graph()
    graph.add_import(importer="meterdesk.domain.errors", imported="meterdesk.domain.pricing", line_number=1,
                     line_contents="from meterdesk.domain.pricing import charge_price")
    group = next(group for group in cycles(graph) if "meterdesk.domain.errors" in group)
    assert "meterdesk.domain.pricing" in group
    assert "meterdesk.domain.errors:1 imports meterdesk.domain.pricing (at the top)" in describe(graph, group)
