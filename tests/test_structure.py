"""The house rules, checked on the source: imports run one way, nothing is loaded by a name
in a string, Keras 2 comes from one module, only public APIs are used, and the docs name
only files that exist."""
import ast
import re

import pytest

from support.builders import ROOT

PACKAGES = ("artifact", "service", "training")
SOURCE_DIRS = PACKAGES + ("tests", "benchmarks")


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(*dirs) -> dict:
    return {path.relative_to(ROOT).as_posix(): path
            for d in dirs for path in sorted((ROOT / d).rglob("*.py"))}


MODULES = {module_name(path): path for path in sources(*PACKAGES).values()}
FILES = sources(*SOURCE_DIRS)
THIS = "tests/test_structure.py"     # names the banned strings to ban them


def imported(path) -> set:
    """Project modules ``path`` imports, at module level or inside functions (relative
    imports resolved; ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = {f"{target}.{a.name}" for a in node.names} & set(MODULES)
            found.update(submodules)
            if len(submodules) < len(node.names):      # names defined in ``target`` itself
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {name for name in found if name in MODULES}


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
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


def test_the_graph_sees_function_local_and_package_imports():
    assert "training.fit.distribute" in GRAPH["training.cli.train"]      # imported inside cmd_train
    assert "training.cli.train" in GRAPH["training.cli.main"]            # from training.cli import train


def test_no_module_is_in_an_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("package,forbidden", [("artifact", ("training", "service")),
                                               ("service", ("training",)), ("training", ("service",))])
def test_packages_depend_one_way(package, forbidden):
    bad = {name: sorted(t for t in GRAPH[name] if t.split(".")[0] in forbidden)
           for name in GRAPH if name.split(".")[0] == package}
    assert {k: v for k, v in bad.items() if v} == {}


def test_library_modules_do_not_import_commands():
    bad = {name: sorted(t for t in GRAPH[name] if t.startswith("training.cli"))
           for name in GRAPH if name.startswith("training.") and not name.startswith("training.cli")
           and name != "training.__main__"}
    assert {k: v for k, v in bad.items() if v} == {}


def test_training_keeps_few_top_level_modules_and_documented_packages():
    top = sorted(p.name for p in (ROOT / "training").glob("*.py"))
    assert len(top) <= 10, top
    for init in sorted((ROOT / "training").glob("*/__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} says nothing"


LOADING_BY_NAME = re.compile(r"\bimport_module\b|__import__\(|\bpkgutil\b|spec_from_file_location|\bimportlib\.reload\b")


@pytest.mark.parametrize("file", sorted(FILES))
def test_nothing_is_loaded_by_a_name_in_a_string(file):
    """Modules named in strings (importlib) hide dependencies from this guard and from readers."""
    if file == THIS:
        return
    assert not LOADING_BY_NAME.search(FILES[file].read_text()), file


KERAS_MODULES = {"tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"}
# the service and artifact load plain TensorFlow (no Keras) for the SavedModel runner, and the
# service tests build their tiny artifact with tf.Module
PLAIN_TF_ALLOWED = ("artifact/", "service/", "tests/service/", "tests/support/service.py")


@pytest.mark.parametrize("file", sorted(FILES))
def test_keras_comes_from_training_keras2(file):
    """TF_USE_LEGACY_KERAS must be set before TensorFlow loads: training.keras2 does it."""
    if file == "training/keras2.py":
        return
    found = set()
    for node in ast.walk(ast.parse(FILES[file].read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    found &= KERAS_MODULES
    if file.startswith(PLAIN_TF_ALLOWED):
        found -= {"tensorflow"}
    assert not found, f"{file} imports {sorted(found)}; use 'from training.keras2 import keras, tf, tfmot'"


@pytest.mark.parametrize("private", ["_run_internal_graph", "_is_graph_network", "._actions"])
def test_no_known_private_api_is_used(private):
    users = [name for name, path in FILES.items() if private in path.read_text() and name != THIS]
    assert users == [], f"{private} used in {users}"


# file -> private names it may read on another object. service/metrics.py writes a flush's
# summed observations into prometheus_client's histogram values (one write per bucket, not
# per observation); tests/service/test_service_metrics.py checks the scrape is the one
# observe() would give with the installed prometheus_client.
ALLOWED_PRIVATE = {"service/metrics.py": {"_buckets", "_sum", "_upper_bounds"}}


@pytest.mark.parametrize("file", sorted(FILES))
def test_no_private_attribute_of_another_object_is_read(file):
    """``obj._name`` only on self/cls (and a module's own names): a Keras model's, an argparse
    parser's or a logging handler's private attributes change without notice."""
    found = set()
    for node in ast.walk(ast.parse(FILES[file].read_text())):
        if (isinstance(node, ast.Attribute) and re.match(r"_(?!_)", node.attr)
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.add(node.attr)
    assert found <= ALLOWED_PRIVATE.get(file, set()), f"{file} reads {sorted(found - ALLOWED_PRIVATE.get(file, set()))}"


DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "deploy").rglob("*.md"),
                    *(ROOT / p for p in FILES), ROOT / "Dockerfile", ROOT / "Makefile", *(ROOT / "configs").glob("*.yaml")])
REPO_PATH = re.compile(r"(?<![\w./<{-])((?:training|service|artifact|tests|benchmarks|docs|configs|deploy|scripts)"
                       r"/[\w./-]*\w\.(?:py|md|yaml|yml|sh|json|jsonl|txt|conf))\b")


@pytest.mark.parametrize("document", [d.relative_to(ROOT).as_posix() for d in DOCUMENTS])
def test_documents_name_only_files_in_the_repository(document):
    text = (ROOT / document).read_text()
    if document == THIS:
        return
    assert not re.search(r"\bDESIGN\b|\bPITFALLS\b|\.\./shared", text), f"{document} points outside the repository"
    missing = sorted({m for m in REPO_PATH.findall(text) if not (ROOT / m).exists()})
    assert missing == [], f"{document} names files that do not exist: {missing}"
