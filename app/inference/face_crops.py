"""Face crops as every part of the app cuts them (serving, teaching, data sets): the square crop
around a face box, a picture file read with its EXIF orientation, and near-duplicate hashes."""
import numpy as np
from PIL import Image, ImageOps

DEFAULT_MARGIN = 0.3


def crop_face(rgb, box, margin=DEFAULT_MARGIN):
    """The square crop around box (x, y, w, h) grown by margin on each side, clipped to the picture."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    height, width = rgb.shape[:2]
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1, :3]))


def dhash(image, size=8):
    """64-bit difference hash: is each pixel of a (size+1) x size grey thumbnail brighter than its right neighbour."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0]) if size == 8 else int("".join("01"[b] for b in bits), 2)


def hamming(a, b):
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def load_rgb(path):
    """An image file as an RGB uint8 array with its EXIF orientation applied; None if unreadable."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
