"""Poses sampled reproducibly from a seed: expression, motion frame, head angles, eyes, mouth, framing."""
import zlib

import numpy as np

# The model at rest, framed whole: used to calibrate the face box.
NEUTRAL = {
    "expression": None, "motion": None, "motion_phase": 0.0,
    "angle_x": 0.0, "angle_y": 0.0, "angle_z": 0.0, "body_angle_x": 0.0, "breath": 0.5,
    "eye_open": None,  # None: as motion and expression leave them; else a factor on both eyes
    "mouth_open": None,  # None: as motion and expression leave it; else PARAM_MOUTH_OPEN_Y
    "zoom": 0.0,  # 0 = whole figure, 1 = bust
    "bust_below_face": 1.5,  # a bust goes this many face heights below the face
    "margin": 0.04,  # of the frame, around a figure that fits
}


def pose_rng(seed, character, outfit, pose_id):
    """The generator for one pose: depends only on the seed, the figure and the pose number."""
    figure = zlib.crc32(f"{character}/{outfit}".encode())
    return np.random.default_rng([seed, figure, pose_id])


def sample(rng, info):
    """A pose for a model whose expressions and motions `info` lists (from the page's load())."""
    def uniform(low, high):
        return round(float(rng.uniform(low, high)), 3)

    pose = dict(NEUTRAL)
    expressions, motions = info["expressions"], info["motions"]
    if expressions and rng.random() >= 0.2:
        pose["expression"] = expressions[int(rng.integers(len(expressions)))]
    if motions and rng.random() >= 0.15:
        pose["motion"] = int(rng.integers(len(motions)))
    pose["motion_phase"] = uniform(0, 1)
    pose["angle_x"] = uniform(-30, 30)
    pose["angle_y"] = uniform(-30, 30)
    pose["angle_z"] = uniform(-20, 20)
    pose["body_angle_x"] = uniform(-10, 10)
    pose["breath"] = uniform(0, 1)
    if rng.random() < 0.25:  # expressions and motions close the eyes often enough already
        pose["eye_open"] = uniform(0, 1)
    if rng.random() < 0.5:
        pose["mouth_open"] = uniform(0, 1)
    # A third of the poses show the whole figure, untouched by the frame's edges.
    pose["zoom"] = 0.0 if rng.random() < 1 / 3 else uniform(0, 1)
    pose["bust_below_face"] = uniform(0.5, 2.0)
    return pose
