"""The package's layers: no import cycle among its modules, the pure modules stay free of RecBole, and the docs
document every key and link to what exists."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_genni"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set) -> set:
    """The package's modules that ``path`` imports anywhere, functions included (``from a import b`` counts
    ``a.b`` when that is a module, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_no_import_cycle():
    graph = import_graph()
    assert "recbole_genni.config" in graph and graph["recbole_genni.config"]
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if nxt == "recbole_genni":  # the package's lazy __init__ re-exports; it is imported by no module
                continue
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("module", ["sampling", "losses", "options", "errors", "telemetry"])
def test_pure_modules_import_without_recbole(module):
    code = f"import sys, recbole_genni.{module}; assert 'recbole' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_key_table_checks_every_key():
    """Every ``neg_*`` key in the package's defaults has a row in :data:`~recbole_genni.options.KEY_CHECKS`, so a
    new key cannot skip validation."""
    import yaml

    from recbole_genni.options import KEY_CHECKS

    checked = {key for key, _, _ in KEY_CHECKS}
    defaults = {}
    for path in (PACKAGE.parent / "properties").rglob("*.yaml"):
        defaults.update(yaml.safe_load(path.read_text()) or {})
    unchecked = sorted(k for k in defaults if k.startswith("neg_") and k not in checked)
    assert unchecked == [], unchecked


def test_configuration_page_has_every_key():
    import yaml

    page = (PACKAGE.parent / "docs" / "configuration.md").read_text()
    keys = set()
    properties = PACKAGE.parent / "properties"
    for path in [properties / "overall.yaml", *(properties / "model").glob("*.yaml")]:
        keys.update(yaml.safe_load(path.read_text()) or {})
    missing = sorted(k for k in keys if f"`{k}`" not in page)
    assert missing == [], missing


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_").replace(" ", "-")


def test_doc_links_resolve():
    import re

    root = PACKAGE.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.MULTILINE)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target}")
    assert broken == []
