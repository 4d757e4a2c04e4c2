"""The demo-data engine's sources, behind one small interface and one registry.

A source is a module with `fetch(cache_dir, log)` (download into its git-ignored cache, staged,
never half-written), `is_fetched(cache_dir)` and `load(cache_dir, ...)` (Figures, backgrounds or
objects). `flask demo fetch --NAME` and the training stream both find them here.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    name: str
    module: str
    gives: str  # "figures", "backgrounds" or "objects"
    about: str  # licence and download size, shown by `flask demo fetch --help`

    def load_module(self):
        """The source's module (imported on first use)."""
        return importlib.import_module(self.module)

    def fetch(self, log=print):
        """Download the source's art into its default cache (a no-op when it is there)."""
        return self.load_module().fetch(log=log)


SOURCES = {s.name: s for s in (
    Source("cast", "app.demo_data.renpy_cast", "figures",
           "Ren'Py demo sprites and background photos (Debian, Expat)"),
    Source("outsiders", "app.demo_data.outsiders", "figures",
           "amoebax's cartoon children, faces outside the cast (Debian, GPL-2+)"),
    Source("portraits", "app.demo_data.portraits", "figures",
           "Wesnoth's painted portraits (GPL-2+, about 150 MB to download), extra training shapes"),
    Source("clipart", "app.demo_data.clipart", "figures",
           "54 clip-art people (public domain, about 130 MB to download), extra training shapes"),
    Source("backdrops", "app.demo_data.backdrops", "backgrounds",
           "wallpapers and Wesnoth's painted landscapes (CC-BY-SA-3.0, GPL-2+; about 250 MB)"),
    Source("distractors", "app.demo_data.distractors", "objects",
           "Tux Paint's stamps (GPL-2, about 160 MB): some 300 objects pasted behind figures"),
    Source("live2d", "app.demo_data.live2d", "figures",
           "Live2D's six sample characters rendered in Chromium from npm (700 poses, about 6 min; "
           "same as `flask demo render`)"),
)}
# Fetched by every `demo fetch`: what the tests and the demo models need.
ALWAYS = ("cast", "outsiders")
