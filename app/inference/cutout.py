"""Background removal: a cutout runner's map made into alpha, boxes and faces as prompts applied.

Serving runs the network through ONNX Runtime (app/inference/onnx_runner.py); a torch network in
training goes through the same Cutter via app/build/torch_cutout.py."""
import threading

import cv2
import numpy as np
from PIL import Image

from app import nets
from app.inference import prompts
from app.storage.model_dirs import load_card

# ImageNet statistics, as in the official U-2-Net test code.
MEAN, STD = nets.IMAGENET_MEAN, nets.IMAGENET_STD


def normalise(rgb, arch="u2netp"):
    """H x W x 3 uint8 -> 3 x H x W float, as the architecture's official weights expect.

    U-2-Net: divided by the image's maximum (not 255, as the official code does), then ImageNet
    mean/std. IS-Net: (pixel - 128) / 256, the npm weights' own convention (isnet_general.PREPROCESS).
    """
    x = np.array(rgb[..., :3], dtype=np.float32)
    if arch == "isnet":
        return np.ascontiguousarray(((x - 128.0) / 256.0).transpose(2, 0, 1))
    x = x / max(float(x.max()), 1e-6)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# Soft alpha ramps from threshold - EDGE (transparent) to threshold + EDGE (opaque): anti-aliased
# edges stay soft, while the faint haze a network leaves over the background (which shows as a
# ghost of it in the PNG) goes. Chosen on validation pictures: it halved their MAE, IoU unchanged.
EDGE = 0.25
ALPHAS = ("soft", "hard", "raw")


def postprocess(prob, *, alpha="soft", threshold=0.5, largest_component=False, clean=False):
    """Probability map (H x W in [0, 1]) -> uint8 alpha: "soft" (the ramp above), "hard" (0 or
    255 at the threshold) or "raw" (the map itself); then cheap clean-up switches."""
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {ALPHAS}")
    hard = prob >= threshold
    if clean:
        # Opening then closing with a small kernel removes specks and pinholes.
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        hard = cv2.morphologyEx(hard.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        hard = cv2.morphologyEx(hard, cv2.MORPH_CLOSE, kernel).astype(bool)
    if largest_component:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(hard.astype(np.uint8), connectivity=8)
        if n > 1:
            hard = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if alpha == "hard":
        out = hard.astype(np.float32)
    else:
        out = prob if alpha == "raw" else np.clip((prob - threshold + EDGE) / (2 * EDGE), 0.0, 1.0)
        if clean or largest_component:
            # Keep the soft edge around what survived: the region grown by a few pixels.
            keep = cv2.dilate(hard.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            out = np.where(keep, out, 0.0)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


class Cutter:
    """A loaded cutout model: a runner (ONNX Runtime when served) plus the card; boxes and alpha
    post-processing are done here, the same for every runner. Shared read-only by requests."""

    def __init__(self, runner, card):
        self.runner = runner
        self.card = card
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir, threads=1):
        """Serve models/<name>/ through ONNX Runtime (its ONNX file, or the verified export of its
        torch weights; a missing or stale export is refused with the command that rebuilds it)."""
        from app.inference.onnx_runner import OnnxCutout
        return cls(OnnxCutout.load(model_dir, threads=threads), load_card(model_dir))

    @property
    def input_size(self):
        return self.runner.input_size

    def probability(self, rgb, box=None, faces=(), face=None):
        """H x W probability map for an RGB array; outside `box` (x, y, w, h) it is 0.

        Faces as prompts (app/inference/prompts.py): with `face`, only that character's figure
        is kept; with `faces` alone, only the figures one of them lies on."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = 0, 0, w, h
        if box is not None:
            bx, by, bw, bh = box
            x0, y0 = max(0, int(bx)), max(0, int(by))
            x1, y1 = min(w, int(bx + bw)), min(h, int(by + bh))
            if x1 <= x0 or y1 <= y0:
                raise ValueError("the box lies outside the image")
        prob = np.zeros((h, w), np.float32)
        with self._lock:  # one forward at a time per process keeps memory flat under load
            prob[y0:y1, x0:x1] = self.runner.probability(rgb[y0:y1, x0:x1])
        if face is not None:
            return prompts.one_figure(prob, rgb, face, faces)
        return prompts.keep_figures(prob, faces)

    def mask(self, image, box=None, faces=(), face=None, **options):
        """uint8 alpha mask (H x W) for a PIL image; options as in `postprocess`."""
        rgb = np.asarray(image.convert("RGB"))
        return postprocess(self.probability(rgb, box, faces, face), **options)

    def cutout(self, image, box=None, faces=(), face=None, **options):
        """The RGBA picture of the input's exact size whose alpha is the mask."""
        rgba = image.convert("RGBA")
        alpha = self.mask(image, box, faces, face, **options)
        if image.mode in ("RGBA", "LA") or "transparency" in image.info:
            alpha = np.minimum(alpha, np.asarray(rgba)[..., 3])  # keep existing transparency
        rgba.putalpha(Image.fromarray(alpha))
        return rgba
