"""The one preprocessing for face crops, shared by training and serving.

Policy (PREPROCESSING_VERSION 1):
- Transparent pixels are laid over white; otherwise colours are left exactly as they are
  (no colour jitter, no histogram equalisation, no greyscale): hair and eye colour are
  what tell characters apart.
- The whole crop is resized to input_size x input_size with bicubic filtering (antialiased
  when shrinking). Face boxes are close to square, so stretching a slightly oblong box
  costs less than cropping away hair at its edges or padding with a made-up colour.
- float32 in [0, 1], then (x - mean) / std per channel with the backbone's constants.
"""
import numpy as np
from PIL import Image

from app.inference.imaging import flatten

PREPROCESSING_VERSION = 1


def face_array(pil_image, input_size, mean, std):
    """A face crop (PIL) -> 3 x S x S float32 array, resized and normalised."""
    if pil_image.width < 1 or pil_image.height < 1:
        raise ValueError("empty face crop")
    rgb = flatten(pil_image).resize((input_size, input_size), Image.BICUBIC)
    x = np.asarray(rgb, dtype=np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def face_arrays(images, input_size, mean, std):
    """A list of face crops -> N x 3 x S x S float32 array (what ONNX Runtime is fed)."""
    if not images:
        return np.empty((0, 3, input_size, input_size), np.float32)
    return np.stack([face_array(im, input_size, mean, std) for im in images])
