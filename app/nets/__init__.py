"""Network definitions with the official parameter names, and the one registry of them.

Loaders, converters and the CLI's choices all read ARCHITECTURES; a network's module is imported
only when it is built.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str  # "backbone" (face features) or "cutout" (foreground map)
    module: str
    cls: str

    def build(self):
        """A fresh instance of the network (random weights)."""
        return getattr(importlib.import_module(self.module), self.cls)()


ARCHITECTURES = {a.name: a for a in (
    Architecture("efficientnet_lite0", "backbone", "app.nets.efficientnet_lite", "EfficientNetLite0"),
    Architecture("inception_v3", "backbone", "app.nets.inception", "Inception3"),
    Architecture("u2net", "cutout", "app.nets.u2net", "U2NET"),
    Architecture("u2netp", "cutout", "app.nets.u2net", "U2NETP"),
    Architecture("isnet", "cutout", "app.nets.isnet", "ISNetDIS"),
)}


def names(kind):
    """Registered architecture names of one kind, sorted."""
    return sorted(a.name for a in ARCHITECTURES.values() if a.kind == kind)


def build(name, kind=None):
    """A fresh network by registered name; ValueError for an unknown name (or one of another kind)."""
    arch = ARCHITECTURES.get(name)
    if arch is None or (kind and arch.kind != kind):
        choices = names(kind) if kind else sorted(ARCHITECTURES)
        raise ValueError(f"unknown {kind or 'network'} architecture {name!r}; choose one of {', '.join(choices)}")
    return arch.build()
