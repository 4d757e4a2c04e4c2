"""The field bench's art: figures and backgrounds that no training set of any model uses.

Every piece carries its provenance, "kind:name" (`debian:PACKAGE/file`, `live2d:CHARACTER`,
`cast:SPRITE`, `skimage:NAME`, `procedural:KIND`), and `refuse_training` raises for anything a
training set draws, so the bench can never be built from training art by mistake.

Fetched into .cache/field_bench (git-ignored, never committed): Debian packages are downloaded
with apt-get, the unseen Live2D characters rendered in Chromium from npm (package-lock.json).
"""
import functools
import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import debian as debian_packages
from app.demo_data.figures import Figure

DEFAULT_CACHE = CACHE_ROOT / "field_bench"
SPLITS = ("val", "test")

# Debian packages the training sets draw from (app/demo_data/*): never a bench source.
TRAINING_PACKAGES = frozenset({
    "renpy-demo", "renpy-thequestion", "amoebax-data", "wesnoth-1.16-data", "gnome-backgrounds",
    "mate-backgrounds", "ukui-wallpapers", "tuxpaint-stamps-default",
})

# Backgrounds: wallpapers and desktop art from packages no training set uses; package -> folder.
BACKGROUND_PACKAGES = {
    "plasma-workspace-wallpapers": "usr/share/wallpapers/",
    "lomiri-wallpapers-20.04": "usr/share/backgrounds/",
    "xfdesktop4-data": "usr/share/backgrounds/xfce/",
}
# scikit-image's sample photos (shipped in the package: checks only, never training).
SKIMAGE_PHOTOS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "grass", "gravel",
                  "stereo_motorcycle")

# Clip-art drawings: openclipart-png people that the training list (demo_data.clipart.CHOSEN)
# leaves out, chosen by eye from a contact sheet of the package's other people: single drawn
# figures or heads with clean alpha and no backdrop shape in their mask.
DRAWING_PACKAGE = "openclipart-png"
DRAWING_DIR = "usr/share/openclipart/png/people/"
DRAWINGS = {
    "val": ("beethoveo_ganson", "breakdance_juliane_krug_01", "maya_head_benji_park_01",
            "einstein_01", "fireman_wedding_mimooh_01", "silhouette_female_1", "saxowoman_erwan_01"),
    "test": ("handel_ganson", "dancer_sketch_erich_schu_01", "my_lovely_baby_enrique_m_02",
             "profile_01", "man_chris_kempson_01", "a_happy_boy_01", "silhouette_male_2"),
}
# Live2D characters from npm that no model trains on (live2d.cast.BENCH_FIGURES), whole per split.
LIVE2D = {"val": ("izumi", "miku"), "test": ("unitychan", "z16", "epsilon")}
LIVE2D_POSES = 24
LIVE2D_SEED = 7
LIVE2D_SIZE = (640, 640)
# The demo cast's test-split sprites (never trained on), on the bench's own scenes.
CAST = {"val": ("eileen concerned", "sylvie green giggle", "sylvie green smile"),
        "test": ("lucy mad", "sylvie green normal", "sylvie green surprised")}
MAX_BACKGROUND_SIDE = 1920
MAX_FIGURE_SIDE = 1024


@functools.cache
def _training_keys():
    """Provenance keys of every figure a training set may draw."""
    from app.demo_data import clipart, renpy_cast
    from app.demo_data.live2d import cast as live2d_cast

    trained = set(renpy_cast.SPLITS["train"]["sprites"]) | set(renpy_cast.SPLITS["val"]["sprites"])
    keys = {f"cast:{k}" for k in trained} | {f"live2d:{c}" for c in live2d_cast.CHARACTERS}
    keys |= {f"debian:{DRAWING_PACKAGE}/{name}" for name in clipart.CHOSEN}
    return keys


def refuse_training(provenance):
    """Raise ValueError if `provenance` ("kind:name") is art a training set uses."""
    kind, _, name = provenance.partition(":")
    if kind == "debian" and name.split("/")[0] in TRAINING_PACKAGES:
        raise ValueError(f"{provenance}: package {name.split('/')[0]} feeds training sets; the bench may not use it")
    if kind in ("cast-background", "portraits", "clipart", "backdrops", "distractors", "outsiders"):
        raise ValueError(f"{provenance}: a training source; the bench may not use it")
    if provenance in _training_keys():
        raise ValueError(f"{provenance}: a training figure; the bench may not use it")
    return provenance


def split_of(name):
    """val or test for a background, by a hash of its name (fixed before any measurement)."""
    return SPLITS[zlib.crc32(name.encode()) % 2]


# ---- fetching ---------------------------------------------------------------------------------

def _pick_wallpaper(paths):
    """Of one wallpaper's sizes, the smallest at least 1280 wide (else the largest)."""
    def width(p):
        try:
            return Image.open(p).size[0]
        except OSError:
            return 0
    sized = sorted((width(p), p) for p in paths)
    big = [p for w, p in sized if w >= 1280]
    return big[0] if big else (sized[-1][1] if sized and sized[-1][0] else None)


def _wallpapers(root):
    """(name, path) of each background picture under an unpacked tree (raster files only)."""
    groups = {}
    for package, folder in BACKGROUND_PACKAGES.items():
        base = Path(root) / folder
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or not path.is_file():
                continue
            rel = path.relative_to(base).as_posix()
            if "/contents/images" in rel:
                group = rel.split("/contents/")[0]  # one picture per wallpaper, of many sizes
            elif "/" in rel:
                continue  # previews, and other packages' folders unpacked beside this one
            else:
                group = path.stem
            groups.setdefault(f"{package}/{group}".replace("/", "--"), []).append(path)
    for name, paths in sorted(groups.items()):
        path = _pick_wallpaper(paths)
        if path is not None:
            yield name, path


def _save_rgb(img, path, max_side):
    img = img.convert("RGB")
    img.thumbnail((max_side, max_side), Image.LANCZOS)
    img.save(path, quality=95)


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download and unpack the bench's Debian art, keep backgrounds and drawings, render the Live2D
    characters; resumable (each part is skipped when present)."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / "backgrounds").is_dir() or not (cache_dir / "drawings").is_dir():
        packages = [*BACKGROUND_PACKAGES, DRAWING_PACKAGE]

        def stage(debs, out_dir):
            unpacked = out_dir.parent / "unpacked"
            debian_packages.unpack(debs, unpacked)
            (out_dir / "backgrounds").mkdir()
            (out_dir / "drawings").mkdir()
            count = 0
            for name, path in _wallpapers(unpacked):
                _save_rgb(Image.open(path), out_dir / "backgrounds" / f"{name}.jpg", MAX_BACKGROUND_SIDE)
                count += 1
            for name in (*DRAWINGS["val"], *DRAWINGS["test"]):
                img = Image.open(unpacked / DRAWING_DIR / f"{name}.png").convert("RGBA")
                img = img.crop(img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox())
                img.thumbnail((MAX_FIGURE_SIDE, MAX_FIGURE_SIDE), Image.LANCZOS)
                img.save(out_dir / "drawings" / f"{name}.png")
            return count
        staging = cache_dir.parent / f".{cache_dir.name}-art"
        debian_packages.fetch(packages, staging, stage, "bench backgrounds", 30, log)
        cache_dir.mkdir(parents=True, exist_ok=True)
        for part in ("backgrounds", "drawings"):
            debian_packages.install(staging / part, cache_dir / part)
        staging.rmdir()
    render_live2d(cache_dir, log)
    return cache_dir


def render_live2d(cache_dir=DEFAULT_CACHE, log=print):
    """Render the unseen Live2D characters' bench poses (resumable) into cache_dir/live2d."""
    from app.demo_data.live2d import cast, renderer

    characters = [*LIVE2D["val"], *LIVE2D["test"]]
    return renderer.render(Path(cache_dir) / "live2d", characters, LIVE2D_POSES, seed=LIVE2D_SEED,
                           size=LIVE2D_SIZE, catalogue=cast.BENCH_FIGURES,
                           progress=lambda done, total, figure, pose, skipped:
                           log(f"[{done}/{total}] {figure} #{pose:04d}") if done % 20 == 0 else None)


# ---- loading ----------------------------------------------------------------------------------

def _figure(provenance, character, rgba, face_box):
    refuse_training(provenance)
    return Figure(provenance, character, "", "", rgba, face_box, {"provenance": provenance})


def load_figures(kind, split, cache_dir=DEFAULT_CACHE):
    """The bench's figures of one set ("cast", "live2d" or "drawings") and split."""
    cache_dir = Path(cache_dir)
    if kind == "cast":
        from app.demo_data import renpy_cast
        return [_figure(f"cast:{f.key}", f.character, f.rgba, f.face_box)
                for f in renpy_cast.load_sprites(keys=CAST[split])]
    if kind == "drawings":
        return [_figure(f"debian:{DRAWING_PACKAGE}/{name}", name,
                        np.asarray(Image.open(cache_dir / "drawings" / f"{name}.png").convert("RGBA")), None)
                for name in DRAWINGS[split]]
    if kind == "live2d":
        import json
        out = []
        for character in LIVE2D[split]:
            folder = cache_dir / "live2d" / f"{character}-default"
            for png in sorted(folder.glob("[0-9]*.png")):
                meta = json.loads(png.with_suffix(".json").read_text())
                rgba = np.asarray(Image.open(png).convert("RGBA"))
                x0, y0, x1, y1 = meta["alpha_box"]
                fx, fy, fw, fh = meta["face_box"]
                out.append(_figure(f"live2d:{character}", character, rgba[y0:y1, x0:x1].copy(),
                                   (fx - x0, fy - y0, fw, fh)))
        if not out:
            raise FileNotFoundError(f"no Live2D bench renders in {cache_dir / 'live2d'}: run "
                                    f"`flask --app wsgi bench fetch`")
        return out
    raise ValueError(f"unknown bench set {kind!r}")


def load_backgrounds(split, cache_dir=DEFAULT_CACHE):
    """{provenance: RGB array} of the split's backgrounds: wallpapers and scikit-image photos."""
    out = {}
    paths = sorted((Path(cache_dir) / "backgrounds").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no bench backgrounds in {cache_dir}: run `flask --app wsgi bench fetch`")
    for path in paths:
        if split_of(path.stem) == split:
            provenance = refuse_training("debian:" + path.stem.replace("--", "/"))
            out[provenance] = np.asarray(Image.open(path).convert("RGB"))
    import skimage.data
    for name in SKIMAGE_PHOTOS:
        if split_of(name) == split:
            img = getattr(skimage.data, name)()
            img = img[0] if isinstance(img, tuple) else img
            img = np.asarray(Image.fromarray(img).convert("RGB"))
            out[f"skimage:{name}"] = img
    return out


def encode_jpeg(rgb, quality):
    """JPEG bytes of an RGB array (the bench's phone and screenshot degradations)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()
