"""domain/ may import only the standard library and itself: it must be readable without a database or a screen."""

import ast
import sys
from pathlib import Path

import meterdesk.domain

DOMAIN_DIR = Path(meterdesk.domain.__file__).parent


def imported_modules(source: Path) -> list[tuple[int, str]]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import stays inside meterdesk.domain
                found.append((node.lineno, "meterdesk.domain"))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def is_allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "__future__" or (
        module == "meterdesk.domain" or module.startswith("meterdesk.domain.")
    )


def test_domain_imports_only_the_standard_library_and_itself():
    sources = sorted(DOMAIN_DIR.rglob("*.py"))
    assert len(sources) >= 7, "the domain modules should all be checked"
    offenders = [
        f"{source.relative_to(DOMAIN_DIR)}:{line}: import {module}"
        for source in sources
        for line, module in imported_modules(source)
        if not is_allowed(module)
    ]
    assert offenders == []


def test_the_check_would_catch_a_third_party_import():
    assert not is_allowed("sqlalchemy")
    assert not is_allowed("PySide6.QtCore")
    assert not is_allowed("meterdesk.store")
    assert is_allowed("decimal")
    assert is_allowed("meterdesk.domain.money")
