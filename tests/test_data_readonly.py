"""A data root that cannot be written (a read-only RNNLAB_DATA, issue 42 item 8): what is
prepared there is read as it is (a shared, read-only cache works); what is not is refused in one
line naming the data root (CacheNotWritable, exit 2 from rnnlab-train: tests/test_refusals.py),
before anything is built. The read-only file system is simulated here (root ignores chmod)."""

from __future__ import annotations

import errno
import tempfile

import pytest

from rnnlab.data import sources
from rnnlab.data.sources import Cache, CacheNotWritable


def _read_only(monkeypatch):
    import filelock

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(sources, "_LOCKS", {})


def test_a_read_only_cache_reads_what_it_has_and_refuses_what_it_lacks(tmp_path, monkeypatch):
    cache = Cache(tmp_path, "toy")
    built = cache.ensure_json("ready.json", lambda: {"n": 1})
    assert built == {"n": 1}
    _read_only(monkeypatch)
    cache = Cache(tmp_path, "toy")
    assert cache.ensure_json("ready.json", lambda: pytest.fail("rebuilt")) == {"n": 1}
    cache.check_can_build("ready.json")  # ready: nothing to write
    before = sorted(tmp_path.rglob("*"))
    for attempt in (lambda: cache.check_can_build("missing.json"),
                    lambda: cache.ensure_json("missing.json", lambda: pytest.fail("built"))):
        with pytest.raises(CacheNotWritable) as info:
            attempt()
        message = str(info.value)
        assert message.startswith(f"paths.data_dir={tmp_path.resolve()} (RNNLAB_DATA): the toy "
                                  "data is not prepared there (missing.json)"), message
        assert "Read-only file system" in message and "\n" not in message
    assert sorted(tmp_path.rglob("*")) == before
