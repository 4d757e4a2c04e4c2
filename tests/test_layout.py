"""The package layout holds: serving never loads training or the demo-data engine, and no
module imports itself back through a cycle."""
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
    """Modules of app/ imported at import time of `path` (module level, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
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


def test_no_import_cycles_in_the_app():
    modules = {_module_name(p): p for p in (ROOT / "app").rglob("*.py")}
    graph = {name: {m for m in _imports(path, name, modules) if m in modules and m != name}
             for name, path in modules.items()}
    # Importing a.b.c imports its packages a and a.b first.
    for name in list(graph):
        for target in list(graph[name]):
            t_parts = target.split(".")
            graph[name] |= {p for p in (".".join(t_parts[:i]) for i in range(1, len(t_parts)))
                            if p != name and not name.startswith(p + ".")}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
