"""The package layout holds: serving never loads training, building or the demo-data engine (nor
torch), and no module or package imports itself back through a cycle, not even through an import
deferred into a function."""
import ast
import subprocess
import sys

from conftest import ROOT

SERVING_MUST_NOT_LOAD = ("app.training", "app.demo_data")


def test_importing_the_app_loads_no_training_or_demo_data_module():
    code = ("import sys, wsgi; print('\\n'.join(m for m in sys.modules if m.startswith(('app', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    assert "app.web.api" in out  # the probe did load the app
    loaded = [m for m in out if m.startswith(SERVING_MUST_NOT_LOAD) or
              (m.startswith("app.commands.") and m != "app.commands")]
    assert loaded == []
    assert "torch" not in out  # torch (seconds to import) loads with the first torch model


def test_a_command_loads_its_module_only_when_it_runs():
    code = ("import sys, wsgi; from click.testing import CliRunner;"
            "r = wsgi.app.test_cli_runner().invoke(args=['reports', 'list']);"
            "print(r.exit_code, 'app.commands.reports' in sys.modules, 'app.commands.train' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "True", "False"]


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name, modules):
    """Modules of app/ that `path` imports anywhere (module level or deferred into a function)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from pkg import sub` imports the submodule; `from mod import name` the module.
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    # A module's own packages are always imported before it: not an edge of its own making.
    return {m for m in found if m.startswith("app") and not name.startswith(m + ".")}


def _graph(level=None):
    """{module: modules it imports} over app/ (or over packages, cut to `level` name parts)."""
    modules = {_module_name(p): p for p in (ROOT / "app").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {m for m in _imports(path, name, modules) if m in modules and m != name}
        if level:
            name, targets = ".".join(name.split(".")[:level]), {".".join(m.split(".")[:level]) for m in targets}
        graph.setdefault(name, set()).update(t for t in targets if t != name)
    return graph


def _cycles(graph):
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycles_between_modules_or_packages():
    assert _cycles(_graph()) == []
    assert _cycles(_graph(level=2)) == []  # app.inference, app.storage, app.training, ...


SERVING = ("app.inference", "app.serving", "app.web", "app.storage", "app.jobs", "app.teach", "app.errors", "app.i18n")
NOT_FOR_SERVING = ("torch", "app.build", "app.training", "app.demo_data", "app.field_bench")


def test_serving_code_never_imports_torch_building_or_training():
    """Not even in a function: serving runs where torch is not installed (heads are numpy files,
    networks ONNX Runtime sessions). app.nets is only its registry (the package itself)."""
    found = []
    for path in (ROOT / "app").rglob("*.py"):
        name = _module_name(path)
        if not name.startswith(SERVING):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{name}: {t}" for t in targets
                      if t.startswith(NOT_FOR_SERVING) or (t.startswith("app.nets.") and t != "app.nets")]
    assert found == []
