"""Clip-art people (Debian `openclipart-png`, public domain): drawn figures with exact alpha.

Cartoon people in flat colours with dark outlines, and a few manga heads: closer to how anime
is drawn than Wesnoth's painted portraits. The package's people folder also holds photos,
pictograms, hands and broken pictures, so the figures are a list chosen by eye from a contact
sheet: single characters or heads, drawn, with clean alpha, and no furniture in their masks
(a cutout network should learn that a table is background). Training shapes only, kept in a
git-ignored cache like the demo cast.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import debian as debian_packages
from app.demo_data.figures import Figure

DEFAULT_CACHE = CACHE_ROOT / "clipart"
PACKAGE = "openclipart-png"
PEOPLE_DIR = "usr/share/openclipart/png/people"
CHOSEN = (
    "a_boy_plays_soccer_01", "aerobics_architetto_fran_01", "architetto_francesco_ro_01",
    "bach_ganson", "backpacker_ganson", "bad_guy_fr_1_01", "ballerina_architetto_fra_01",
    "blue_girl_dirk_struve_", "bride1_jarno_vasamaa_01",
    "brozo_the_clown_enrique__01", "bussiness_woman_donna_i_01",
    "cm1", "donna_incinta_architetto_01", "fitness_architetto_franc_01", "golf_drive_ganson",
    "groom1_jarno_vasamaa_01", "handstand_andrew_fitzsim_01", "head1", "head11", "head12",
    "head13", "head14", "head2", "head3", "head4", "head5", "head6", "io_bambina_architetto_fr_01",
    "kid_01", "man_01", "man_02", "man_face_darek_adamkiewi_01", "manga_girl_dirk_struve_01",
    "my_lovely_baby_enrique_m_01", "nonno_sport_architetto_f_01", "pattinatrice_architetto__01",
    "pattinatrici_sul_ghiacc_01", "police_man_ganson", "rich_young_man_going_aw_01",
    "roller_blader_ganson", "self_portrait_hardi1", "water_fight_ganson1",
    "wedding_couple_jarno_vas_", "woman_01", "woman_chemist_gerald_g._01",
    "woman_doctor_gerald_g._01", "woman_fashion_01_gerald__01", "woman_fashion_02_gerald__01",
    "woman_nurse_gerald_g._01", "woman_police_01_gerald_g_01", "woman_police_02_gerald_g_01",
    "woman_reading_gerald_g._01", "xbill_01", "yoga_architetto_francesc_01",
)
MAX_SIDE = 768  # composites are drawn at a few hundred pixels


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download the package (about 130 MB) and keep the chosen figures, cropped, in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        log(f"clip-art figures already in {cache_dir}")
        return cache_dir

    def stage(debs, out_dir):
        unpacked = out_dir.parent / "unpacked"  # in the download's temporary folder
        debian_packages.unpack(debs, unpacked)  # some figures are links: unpacked, they resolve
        return extract(unpacked / PEOPLE_DIR, out_dir)
    debian_packages.fetch([PACKAGE], cache_dir, stage, "clip-art figures", len(CHOSEN), log)
    return cache_dir


def extract(people_dir, out_dir):
    """Write each chosen figure found in people_dir to out_dir, cropped to its alpha; count."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in CHOSEN:
        path = Path(people_dir) / f"{name}.png"  # some are links within the package: open follows them
        if not path.exists():
            continue
        img = Image.open(path).convert("RGBA")
        box = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
        if box is None:
            continue
        img = img.crop(box)
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        img.save(out_dir / f"{name}.png")  # out_dir is a staging folder: swapped in whole
        count += 1
    return count


def is_fetched(cache_dir=DEFAULT_CACHE):
    return Path(cache_dir).is_dir() and len(list(Path(cache_dir).glob("*.png"))) >= len(CHOSEN)


def load(cache_dir=DEFAULT_CACHE, min_count=len(CHOSEN)):
    """The figures as Figures without face boxes (alpha = exact mask)."""
    paths = [p for p in (Path(cache_dir) / f"{name}.png" for name in CHOSEN) if p.exists()]
    if len(paths) < min_count:
        raise FileNotFoundError(f"clip-art figures not found in {cache_dir}: run "
                                f"`flask --app wsgi demo fetch --clipart` first")
    return [Figure(p.stem, "clipart", "clipart", p.stem, np.asarray(Image.open(p).convert("RGBA")), None)
            for p in paths]
