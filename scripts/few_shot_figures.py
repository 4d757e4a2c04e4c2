"""Few-shot figures through the operator API: two characters enrolled from 8 faces each, asked on
their other faces, with an outsider never enrolled and boxes on no face beside them.

    .venv/bin/python scripts/few_shot_figures.py [--out runs/few-shot.json]

Held-out rule (fixed before any figure was computed):
- Characters: the amoebax children of the face data's test split (app/demo_data/outsiders.py),
  which no head trained on and no threshold was calibrated on. Nicholas and Sasha are enrolled;
  Tom is never enrolled and must be answered "unknown".
- Each enrolled character: 8 faces, known-box crops of composites on the test split's photos
  (seed 1); queries: 40 other composites (seed 2) cut as a person would drag a box (`drawn`) and
  as the known-box crop, so no query picture is an enrolled one.
- Boxes on no face: drawn boxes away from every face of 40 test-split cast composites (seed 3).
- Enrolment and questions go through the real app over its HTTP interface (Flask test client,
  a fresh SQLite database, an operator token), with the live head and the shipped embedding.
"""
import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.demo_data import compose, outsiders, renpy_cast  # noqa: E402
from app.training import crop_kinds  # noqa: E402
from app.training.demo_faces import non_face_box  # noqa: E402

ENROLLED = ("Nicholas", "Sasha")
NOT_ENROLLED = "Tom"
ENROL_FACES = 8
QUERIES = 40
TOKEN = "few-shot-figures-operator-token-000"  # the app wants at least 32 characters
SIZE = (512, 384)


def png(image):
    """PIL image -> PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def outsider_crops(name, count, seed, kinds):
    """[(kind, crop)] of `count` composites of one amoebax child on the test split's photos."""
    figures = [f for f in outsiders.load(split="test") if f.character.casefold() == name.casefold()
               or f.key.casefold() == name.casefold()]
    photos = renpy_cast.load_backgrounds(names=renpy_cast.SPLITS["test"]["backgrounds"])
    rng = np.random.default_rng(seed)
    out = []
    for comp in compose.composites(rng, figures, photos, count, SIZE, per_picture=(1.0, 1)):
        for _, box in comp.faces:
            for kind in kinds:
                crop = crop_kinds.kind_crops(rng, comp.image, box, kind)
                if crop is not None:
                    out.append((kind, crop))
    return out


def no_face_crops(count, seed):
    """[("drawn", crop)] of boxes away from every face on test-split cast composites."""
    rng = np.random.default_rng(seed)
    out = []
    for comp in renpy_cast.composites("test", count, seed, SIZE):
        box = non_face_box(rng, comp)
        if box is not None:
            crop = crop_kinds.cut(comp.image, crop_kinds.drawn_box(rng, box))
            if crop is not None:
                out.append(("drawn", crop))
    return out


def ask(client, crops):
    """The API's answer for each crop, in order (16 a request)."""
    answers = []
    for start in range(0, len(crops), 16):
        files = [(io.BytesIO(png(c)), f"f{i}.png") for i, (_, c) in enumerate(crops[start:start + 16])]
        r = client.post("/api/identify", data={"faces": files}, content_type="multipart/form-data")
        assert r.status_code == 200, r.get_json()
        answers += r.get_json()["faces"]
    return answers


def rate(hits):
    """Share of True, rounded, with its count."""
    return {"rate": round(float(np.mean(hits)), 4) if hits else None, "n": len(hits)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "few-shot.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "REPORT_DIR": tmp, "TORCH_THREADS": 2, "ADMIN_TOKEN": TOKEN,
                          "DATABASE_URL": f"sqlite:///{tmp}/gallery.db"})
        client = app.test_client()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for name in ENROLLED:
            faces = [c for _, c in outsider_crops(name, ENROL_FACES, 1, ("known",))][:ENROL_FACES]
            files = [(io.BytesIO(png(c)), f"{name}{i}.png") for i, c in enumerate(faces)]
            r = client.post("/api/characters", data={"name": name, "faces": files}, headers=auth,
                            content_type="multipart/form-data")
            assert r.status_code == 201, r.get_json()
        figures = {"enrolled": {}, "not_enrolled": {}}
        for name in ENROLLED:
            queries = outsider_crops(name, QUERIES, 2, ("drawn", "known"))
            for kind in ("drawn", "known"):
                mine = [c for c in queries if c[0] == kind]
                answers = ask(client, mine)
                figures["enrolled"][f"{name} {kind}"] = rate(
                    [a["predictions"][0]["label"] == name and not a["unknown"] for a in answers])
        tom = outsider_crops(NOT_ENROLLED, QUERIES, 2, ("drawn", "known"))
        figures["not_enrolled"][f"{NOT_ENROLLED} (never enrolled)"] = rate([a["unknown"] for a in ask(client, tom)])
        no_face = no_face_crops(QUERIES, 3)
        figures["not_enrolled"]["boxes on no face"] = rate([a["unknown"] for a in ask(client, no_face)])
        hits = [v["rate"] * v["n"] for v in figures["enrolled"].values()]
        total = sum(v["n"] for v in figures["enrolled"].values())
        figures["enrolled_named_and_accepted"] = round(sum(hits) / total, 4)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
