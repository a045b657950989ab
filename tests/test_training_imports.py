"""The training package's structure: imports run one way (no cycle, library modules never
import CLI modules) and only public Keras APIs are used."""
import ast
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "training"
MODULES = {path.stem: path for path in sorted(PACKAGE.glob("*.py"))}
CLI_MODULES = {name for name in MODULES if name in ("cli", "commands", "__main__") or name.startswith("cli_")}


def imported_modules(path) -> set:
    """Modules of the package that ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("training."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("training."))
    return found & set(MODULES)


GRAPH = {name: imported_modules(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_local_imports_are_in_the_graph():
    assert "transfer" in GRAPH["commands"]          # imported inside _load_checkpoint only


def test_no_module_of_training_is_in_an_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(set(MODULES) - CLI_MODULES))
def test_library_modules_do_not_import_cli_modules(name):
    assert not GRAPH[name] & CLI_MODULES, f"training/{name}.py imports {sorted(GRAPH[name] & CLI_MODULES)}"


@pytest.mark.parametrize("private", ["_run_internal_graph", "_is_graph_network", "._actions"])
def test_no_known_private_api_is_used(private):
    users = [name for name, path in MODULES.items() if private in path.read_text()]
    assert users == [], f"{private} used in {users}"


def test_no_private_attribute_of_another_object_is_read():
    """``obj._name`` only on self/cls: a Keras model's, an argparse parser's or a logging
    handler's private attributes change without notice."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and re.match(r"_(?!_)", node.attr)
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"training/{name}.py:{node.lineno} .{node.attr}")
    assert found == []
