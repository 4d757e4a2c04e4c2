"""Art from Debian packages: download into a temporary folder, stage, then swap into a cache."""
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

from app.storage.files import replace_dir


@contextmanager
def downloaded(packages, cache_dir, log=print):
    """Download `packages` with apt-get into a temporary folder beside cache_dir; yields
    (folder, [.deb paths]). The folder and everything staged in it are removed afterwards."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError(f"{cache_dir.name} needs apt-get and dpkg (Debian) to download "
                           f"{' '.join(packages)}")
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir.parent) as tmp:
        tmp = Path(tmp)
        log(f"apt-get download {' '.join(packages)}")
        subprocess.run(["apt-get", "download", *packages], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        yield tmp, sorted(tmp.glob("*.deb"))


def unpack(debs, out_dir):
    """Unpack every package's files under out_dir (dpkg -x)."""
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(out_dir)], check=True)


def install(staged, cache_dir):
    """Put a fully staged folder in place of cache_dir (same file system: a rename)."""
    replace_dir(staged, cache_dir)


def fetch(packages, cache_dir, stage, what, min_count, log=print):
    """Download `packages`, let stage(debs, folder) fill an empty staging folder and return how
    many `what` it wrote, check there are min_count or more, then swap the folder in; count."""
    with downloaded(packages, cache_dir, log) as (tmp, debs):
        staged = tmp / "staged"
        staged.mkdir()
        count = stage(debs, staged)
        if count < min_count:
            raise RuntimeError(f"{' '.join(packages)} held only {count} {what} "
                               f"(expected {min_count} or more)")
        install(staged, cache_dir)
    log(f"{count} {what} in {cache_dir}")
    return count


def files(deb):
    """Stream a package's regular files without unpacking it: yields (path without "./", file)."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    with tar.extractfile(member) as src:
                        yield member.name.removeprefix("./"), src
    if proc.returncode:
        raise RuntimeError(f"dpkg-deb could not read {deb}")


def cached(cache_dir, suffix, what, min_count):
    """The cache's files ending in `suffix`, sorted; FileNotFoundError saying which fetch brings
    them when there are fewer than min_count (`what` is the `demo fetch` option's name)."""
    paths = sorted(Path(cache_dir).glob(f"*{suffix}"))
    if len(paths) < min_count:
        raise FileNotFoundError(f"{what} not found in {cache_dir}: run "
                                f"`flask --app wsgi demo fetch --{what}` first")
    return paths
