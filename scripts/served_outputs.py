"""Fingerprints of what the app serves on a fixed picture set, to show a refactor changed nothing.

    .venv/bin/python scripts/served_outputs.py OUT.json     (in each checkout, then compare)

Masks of every served cutout model (sha256 of the PNG bytes) on the field bench's first six val
pictures, and the identify answer (names, scores) for two crops of each. Run it in the checkout
before and after a change: equal files mean byte-identical masks and the same answers.
"""
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402

MODELS = ("demo-cutout", "u2netp-anime", "isnet-anime")


def main(out):
    bench = ROOT / ".cache" / "field_bench" / "bench" / "val"
    pictures = [p for p in sorted(bench.rglob("0*.*")) if p.suffix in (".jpg", ".png") and "." not in p.stem][:6]
    if not pictures:
        sys.exit(f"no field bench in {bench}: run `flask --app wsgi bench build` first")
    with tempfile.TemporaryDirectory() as reports:
        client = create_app({"TESTING": True, "REPORT_DIR": reports}).test_client()
        found = {}
        for model in MODELS:
            for path in pictures:
                answer = client.post(f"/api/cutout?model={model}&output=mask",
                                     data={"image": (io.BytesIO(path.read_bytes()), path.name)})
                found[f"{model}/{path.parent.name}/{path.name}"] = (
                    hashlib.sha256(answer.data).hexdigest() if answer.status_code == 200 else answer.status_code)
        crops = []
        for path in pictures:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            w, h = rgb.size
            for k in range(2):
                buffer = io.BytesIO()
                left, top, side = k * w // 4, h // 5, w // 4
                rgb.crop((left, top, left + side, top + side)).save(buffer, "PNG")
                crops.append(buffer.getvalue())
        faces = [(io.BytesIO(crop), f"{i}.png") for i, crop in enumerate(crops)]
        answer = client.post("/api/identify", data={"faces": faces})
        found["identify"] = answer.get_json()
    Path(out).write_text(json.dumps(found, indent=1, sort_keys=True))
    print(f"{len(pictures)} pictures x {len(MODELS)} models, {len(crops)} crops -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "served-outputs.json")
