"""Read an offline W&B run file (``run-<id>.wandb``) back without the W&B service.

The file is a LevelDB-style log (32 KiB blocks; each chunk has a 7-byte header: CRC32, length,
type FULL/FIRST/MIDDLE/LAST) of protobuf ``Record`` messages, after a 7-byte file header
(":W&B", magic 0xBEE1, version 0). The tests use this to check what a run really logged (a test
helper: it lives in tests/, not in the package).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    path: Path
    run_id: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    name: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None

    def series(self, key: str) -> list[Any]:
        """Every logged value of ``key``, in logging order."""
        return [row[key] for row in self.history if key in row]

    @property
    def keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def _records(data: bytes):
    ident, magic, _version = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError("not a W&B run file (bad header)")
    position, pending = _FILE_HEADER.size, []
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:  # block trailer padding
            position += left_in_block
            continue
        _crc, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        position += _CHUNK_HEADER.size
        if kind == 0 and length == 0:
            position += left_in_block - _CHUNK_HEADER.size
            continue
        payload = data[position:position + length]
        position += length
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            pending = [payload]
        elif kind == _MIDDLE:
            pending.append(payload)
        elif kind == _LAST:
            pending.append(payload)
            yield b"".join(pending)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse ``run-*.wandb`` (or the ``offline-run-*`` folder holding it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {path}")
        path = files[0]
    run = OfflineRun(path=path)
    for payload in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":  # later run records may update only some fields
            run.run_id = record.run.run_id or run.run_id
            run.group = record.run.run_group or run.group
            run.tags = list(record.run.tags) or run.tags
            run.name = record.run.display_name or run.name
            run.job_type = record.run.job_type or run.job_type
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                if _key(item):
                    run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def find_offline_runs(run_dir: str | Path) -> list[Path]:
    """The offline W&B run folders inside an rnnlab run directory."""
    return sorted((Path(run_dir) / "wandb").glob("offline-run-*"))


def read_finished_run(run_dir: str | Path, timeout: float = 30.0) -> OfflineRun:
    """The single offline run of an rnnlab run dir, once its exit record is on disk.

    wandb.finish() can return a few ms before the W&B core process has written the file's last
    blocks (seen under load), so poll until the exit record is there or ``timeout`` passes.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        runs = find_offline_runs(run_dir)
        try:
            run = read_offline_run(runs[0]) if len(runs) == 1 else None
        except (ValueError, OSError, struct.error):  # a half-written file: read it again
            run = None
        if run is not None and run.exit_code is not None:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished W&B run in {run_dir} after {timeout} s: {runs}")
        time.sleep(0.1)
