"""Background removal with U2-Net / U2-NetP: preprocessing, inference, post-processing."""
import threading

import cv2
import numpy as np
from PIL import Image

from app import nets
from app.inference import prompts
from app.storage.model_dirs import ModelError, load_card, load_weights

# ImageNet statistics, as in the official U-2-Net test code.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


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


def predict_maps(net, rgb, size, arch="u2netp"):
    """Main map (U-2-Net's fused d0, IS-Net's d1) for one picture, min-max normalised as the
    official test scripts do; H x W float."""
    import torch  # serving imports torch only once a torch model is used

    h, w = rgb.shape[:2]
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (size, size), interpolation=cv2.INTER_AREA)
    with torch.inference_mode():
        d0 = net(torch.from_numpy(normalise(small, arch)).unsqueeze(0))[0][0, 0].numpy()
    d0 = (d0 - d0.min()) / max(float(d0.max() - d0.min()), 1e-8)
    return cv2.resize(d0, (w, h), interpolation=cv2.INTER_LINEAR)


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


def cutout_card(name, architecture, input_size, *, version="1", training=None, metrics=None,
                **extra):
    """The card of a U-2-Net-family cutout model directory (weights and sha256 are added on write)."""
    card = {
        "name": name, "kind": "cutout", "version": version, "architecture": architecture,
        "input_size": int(input_size), "mean": list(MEAN), "std": list(STD),
        "normalisation": "divide by the picture's maximum, then ImageNet mean/std (official U-2-Net)",
        "training": training or {}, "metrics": metrics or {},
    }
    card.update(extra)
    return card


class TorchCutout:
    """A torch cutout network behind the runners' one call, `probability(rgb)`: for training and
    for evaluating a checkpoint before it is exported; serving uses onnx_runner.OnnxCutout."""

    def __init__(self, net, input_size, arch="u2netp"):
        self.net = net.eval()
        self.input_size = int(input_size)
        self.arch = arch

    def probability(self, rgb):
        """H x W map in [0, 1] for an RGB uint8 array."""
        return predict_maps(self.net, rgb, self.input_size, self.arch)


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

    @classmethod
    def from_net(cls, net, card):
        """A Cutter over a torch network in memory (training, evaluation of a checkpoint)."""
        return cls(TorchCutout(net, card.get("input_size", 320), card.get("architecture", "u2netp")), card)

    @classmethod
    def load_torch(cls, model_dir):
        """A torch model directory's weights in a torch network (the export's reference)."""
        card = load_card(model_dir)
        try:
            net = nets.build(card.get("architecture"), "cutout")
        except ValueError as exc:
            raise ModelError(f"{model_dir}: {exc}") from None
        net.load_state_dict(load_weights(model_dir, card), strict=True)
        return cls.from_net(net, card)

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
