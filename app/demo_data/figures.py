"""What the demo-data engine's sources hand over: figures with exact alpha, and composed pictures."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Figure:
    """A drawn character (or any figure) whose alpha channel is its exact mask."""
    key: str  # unique within its source, e.g. "sylvie green smile"
    character: str  # who it is ("sylvie"); sources without identities use their own name
    outfit: str
    expression: str  # pose or expression
    rgba: np.ndarray  # H x W x 4 uint8
    face_box: tuple | None  # (x, y, w, h) in figure pixels; None when the face is unknown
    meta: dict = field(default_factory=dict, repr=False)  # what the source knows besides (pose, angles...)


@dataclass
class Composite:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W uint8, 255 = figure
    faces: list  # [(character, (x, y, w, h))]
    figures: tuple = ()  # keys of the figures in it
    background: str = ""  # the photo's name or "synthetic"
    extra: dict = field(default_factory=dict)
