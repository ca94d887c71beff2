"""Grep-level facts about the code base, checked on its syntax trees: no import runs up a layer (the layers are
drawn in ftsd/__init__.py's docstring), no module-level mutable state, one (sure, maybe) evaluator."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ftsd"

# module or package (dotted, below ftsd.) -> layer, as drawn in ftsd/__init__.py
LAYERS = {
    "errors": 0, "settings": 0, "digits": 0, "query": 0, "analysis": 0, "common_grams": 0, "_native": 0,
    "userdb": 1, "maildir": 1, "message": 1, "mimeparse": 1, "decoders": 1,
    "store": 2, "_lexgrams": 2,
    "search": 3, "indexer": 3,
    "doveconf": 1,
    "runtime": 4, "privileges": 4,
    "service": 5, "lifecycle": 5,
    "daemon": 6, "solr": 6, "cluster": 6, "runner": 6,
    "api": 7, "cli": 7, "cli_client": 7, "monitor": 7, "logs": 7, "__main__": 7,
}
# Module-level names that hold process-wide state on purpose, with the reason.
ALLOWED_STATE = {
    ("analysis", "_MARKS"): "memo table of a pure function of the Unicode database",
    ("api.app", "router"): "FastAPI route table, complete once the module is imported",
}
_MUTABLE_CALLS = {"dict", "list", "set", "OrderedDict", "defaultdict", "deque", "Lock", "RLock", "Event"}
# immutable values (frozen dataclasses, paths, read-only mapping views)
_VALUE_CALLS = {"TypeVar", "NamedTuple", "Path", "Not", "All", "MappingProxyType"}


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _layer(module: str) -> int | None:
    return LAYERS.get(module.split(".")[0]) if module else 0


def _imports(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ftsd"):
            base = node.module.removeprefix("ftsd").lstrip(".")
            found += [base] if base else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("ftsd.") for a in node.names if a.name.startswith("ftsd.")]
    return found


def test_every_module_has_a_layer_and_no_import_runs_up() -> None:
    upward = []
    for name, tree in _modules():
        own = _layer(name)
        assert own is not None, f"ftsd.{name} is in no layer: add it to ftsd/__init__.py and LAYERS"
        for target in _imports(tree):
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                upward.append(f"ftsd.{name} (layer {own}) imports ftsd.{target} (layer {theirs})")
    assert upward == []


def _is_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set):
        return not (value.keys if isinstance(value, ast.Dict) else value.elts)  # an empty one waits to be filled
    if isinstance(value, ast.Call):
        func = value.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return called in _MUTABLE_CALLS or (called[:1].isupper() and called not in _VALUE_CALLS)
    return False


def test_no_mutable_module_level_state() -> None:
    found = []
    for name, tree in _modules():
        for node in tree.body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign) and _is_mutable(node.value):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign) and _is_mutable(node.value):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and (name, target.id) not in ALLOWED_STATE:
                    found.append(f"ftsd.{name}.{target.id}")
        for any_node in ast.walk(tree):
            if isinstance(any_node, ast.Global):
                found.append(f"ftsd.{name}: global {', '.join(any_node.names)}")
    assert found == []


def test_one_evaluator() -> None:
    """Only search.py combines (sure, maybe) UID sets."""
    holders = [name for name, tree in _modules()
               if any(isinstance(n, ast.FunctionDef) and n.name == "_sets" for n in ast.walk(tree))]
    assert holders == ["search"]
    assert not (ROOT / "solr" / "evaluate.py").exists()


def test_only_the_store_imports_xapian() -> None:
    """The index is the store's: everything else goes through ftsd/store (UserIndex, searcher, maintenance)."""
    found = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "xapian" for n in names) and not name.startswith("store"):
                found.append(name)
    assert found == []
