"""The result file: an open format, checked on load, written atomically.

:mod:`invlend.store` is the public face (``save``, ``load``); this module writes a result's
arrays and record to an ``.npz`` file and reads them back, every field and array header checked
against the recorded run (:mod:`invlend._sim.layout`) before anything is read in full. It knows
a result only through its attributes (``run``, ``scenario``, ``structures``, ``group_of``,
``arrays``), so it imports nothing of :mod:`invlend.results`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npy

from invlend._sim import layout as L
from invlend._sim.layout import RunInfo
from invlend._sim.lowering import MEASURES, linkage_groups, run_sizes
from invlend.config import Scenario, Structure, check_run

__all__ = ["FORMAT", "FORMAT_VERSION", "ResultFileError", "Stored", "read", "write"]

FORMAT = "invlend-result"
FORMAT_VERSION = 3  # 2: model version 2 (the measures, the parts of value); 3: importance weights
#: Versions this module reads: a version 2 file is a run without a tilt or a tolerance.
_READS = (2, 3)

# A run's inputs take a few kB of JSON; numpy stores it as UTF-32, 4 bytes a character.
_MAX_META_BYTES = 16 * 2**20
# numpy's own default bound on a .npy header (characters); plus magic, version and length.
_MAX_HEADER_BYTES = 10_000 + 12
_READ_CHUNK = 16 * 2**20  # bytes decompressed at a time
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what numpy.savez writes
# The record of the run (RunInfo) and its inputs, under the file's format and version.
_META_FIELDS = ("format", "format_version", *RunInfo._fields, "group_of", "scenario", "structures")


class ResultFileError(ValueError):
    """A file that :func:`load` cannot read as an invlend result.

    The message starts with the path and says what is wrong: the member
    (``arr/s0.npv: shape (3,) ...``), the metadata field (``meta.json: n_portfolios: ...``)
    or the check (``checksum mismatch``). A subclass of ``ValueError``.
    """


def _digest(meta_text: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_text.encode("utf-8"))
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"\0{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the bytes in place, not a copy
    return h.hexdigest()


def _umask() -> int:
    """The process umask: from ``/proc`` on Linux, else set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # 0o077 for the instant it is set, so a file another thread creates then is private.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where directories cannot be synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(result, path: str | Path, compress: bool = False) -> None:
    """Write ``result`` to ``path`` atomically; see :func:`invlend.store.save`."""
    if not isinstance(compress, bool):
        raise TypeError(f"compress: expected True or False, got {compress!r}")
    raw = os.fspath(path)
    if not raw:
        raise ValueError("path: empty; give a file name such as 'run.npz'")
    path = Path(raw)
    if path.is_dir():
        raise ValueError(
            f"path: {path} is a directory; give a file name in it, such as {path / 'run.npz'}"
        )
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **result.run.as_dict(),
        "group_of": list(result.group_of),
        "scenario": result.scenario.model_dump(mode="json"),
        "structures": [s.model_dump(mode="json") for s in result.structures],
    }
    meta_text = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    arrays = dict(result.arrays)
    payload = {f"arr/{k}": v for k, v in arrays.items()}
    payload["meta.json"] = np.array(meta_text)
    payload["checksum"] = np.array(_digest(meta_text, arrays))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"path: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0o600); the result gets what any new file gets.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


class Stored(NamedTuple):
    """What a result file holds, checked: the arguments of ``SimulationResult.from_arrays``."""

    scenario: Scenario
    structures: list[Structure]
    group_of: tuple[int, ...]
    arrays: dict[str, np.ndarray]
    run: RunInfo


def read(path: str | Path) -> Stored:
    """Read a file written by :func:`write`; see :func:`invlend.store.load`."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX:
                raise ResultFileError(
                    f"{path}: not an invlend result (a single .npy array; results are the "
                    ".npz files that save writes)"
                )
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                return _read(path, zf)
    except ResultFileError:
        raise
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except MemoryError:
        raise ResultFileError(
            f"{path}: not a readable invlend result (out of memory while reading it)"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ResultFileError(f"{path}: not a readable invlend result ({exc})") from None
    except Exception as exc:
        # Whatever else the content provokes (zlib.error, struct.error, a RecursionError in a
        # parser, ...): still this file's fault, and still one exception type for the caller.
        raise ResultFileError(
            f"{path}: not a readable invlend result ({type(exc).__name__}: {exc})"
        ) from exc


# ---------------------------------------------------------------------------- reading


class _Bounded:
    """A zip member's stream that never yields more than ``limit`` bytes, counting them."""

    def __init__(self, fp, limit: int) -> None:
        self.fp = fp
        self.limit = limit
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        left = self.limit - self.pos
        n = left if n is None or n < 0 else min(n, left)
        data = self.fp.read(n) if n > 0 else b""
        self.pos += len(data)
        return data


def _members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's members by array name (``.npy`` dropped), after checking the directory."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if "meta.json.npy" not in names or "checksum.npy" not in names:
        raise ResultFileError(f"{path}: not an invlend result (no meta.json or checksum)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ResultFileError(f"{path}: members appear more than once: {dupes}")
    out = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise ResultFileError(
                f"{path}: unexpected member {name!r}; a result holds only .npy arrays"
            )
        if info.compress_type not in _ZIP_METHODS:
            raise ResultFileError(
                f"{path}: {name}: compression method {info.compress_type} is not one that "
                "numpy writes (0 stored, 8 deflated)"
            )
        if info.flag_bits & 0x1:
            raise ResultFileError(f"{path}: {name}: encrypted members are not supported")
        out[name.removesuffix(".npy")] = info
    return out


def _open_array(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """Open a member and read its ``.npy`` header: ``(stream, shape, fortran, dtype)``.

    The stream is left at the first data byte, bounded by the member's recorded size.
    """
    name = info.filename.removesuffix(".npy")
    fp = _Bounded(zf.open(info), min(info.file_size, _MAX_HEADER_BYTES))
    try:
        version = npy.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(fp)
        else:
            raise ValueError(f"version {version[0]}.{version[1]} is not 1.0 or 2.0")
    except Exception as exc:
        fp.fp.close()
        raise ResultFileError(f"{path}: {name}: not a readable .npy header ({exc})") from None
    if any(d < 0 for d in shape):
        fp.fp.close()
        raise ResultFileError(f"{path}: {name}: the header declares a negative shape {shape}")
    fp.limit = info.file_size
    declared = fp.pos + math.prod(shape) * dtype.itemsize
    if info.file_size != declared:
        fp.fp.close()
        raise ResultFileError(
            f"{path}: {name}: the member holds {info.file_size} bytes but its header "
            f"declares {declared} (shape {shape}, dtype {dtype})"
        )
    return fp, shape, fortran, dtype


def _read_data(path: Path, name: str, fp: _Bounded, shape, fortran: bool, dtype) -> np.ndarray:
    """The array after the header, read in chunks into one buffer; closes the stream."""
    with fp.fp:
        flat = np.empty(math.prod(shape), dtype)
        buf = flat.view(np.uint8)
        pos = 0
        while pos < buf.size:
            chunk = fp.read(min(_READ_CHUNK, buf.size - pos))
            if not chunk:
                raise ResultFileError(f"{path}: {name}: truncated after {pos} bytes of data")
            buf[pos : pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
            pos += len(chunk)
        fp.fp.read(1)  # at the member's end: zipfile checks its CRC here
    return flat.reshape(shape, order="F" if fortran else "C")


def _read_text(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> str:
    """A member holding one string (meta.json, checksum), refused above ``limit`` bytes."""
    name = info.filename.removesuffix(".npy")
    if info.file_size > limit:
        raise ResultFileError(
            f"{path}: {name}: {info.file_size} bytes, more than the {limit} a result's "
            f"{name} can take"
        )
    fp, shape, fortran, dtype = _open_array(path, zf, info)
    if dtype.kind != "U" or shape != () or dtype.itemsize == 0:
        fp.fp.close()
        raise ResultFileError(
            f"{path}: {name}: expected one string, got shape {shape}, dtype {dtype}"
        )
    return str(_read_data(path, name, fp, shape, fortran, dtype)[()])


def _read(path: Path, zf: zipfile.ZipFile) -> Stored:
    members = _members(path, zf)
    meta_text = _read_text(path, zf, members.pop("meta.json"), _MAX_META_BYTES)
    checksum = _read_text(path, zf, members.pop("checksum"), _MAX_HEADER_BYTES + 4 * 64)
    meta, scenario, structures = _parse_meta(path, meta_text)
    layout = _layout(meta, scenario, structures)

    stored = {k.removeprefix("arr/"): info for k, info in members.items() if k[:4] == "arr/"}
    extra = sorted(k for k in members if k[:4] != "arr/" or k[4:] not in layout)
    if extra:
        raise ResultFileError(f"{path}: arrays the recorded run does not have: {extra}")
    missing = sorted(set(layout) - set(stored))
    if missing:
        raise ResultFileError(f"{path}: arrays missing: {[f'arr/{k}' for k in missing]}")

    # Every header against the recorded run, before any array is read in full.
    headers = {}
    for key, info in stored.items():
        fp, shape, fortran, dtype = _open_array(path, zf, info)
        fp.fp.close()
        want_shape, want_dtype = layout[key]
        if dtype != want_dtype:
            raise ResultFileError(
                f"{path}: arr/{key}: dtype {dtype} is not the recorded run's {want_dtype}"
            )
        if len(shape) != len(want_shape) or any(
            w is not None and s != w for s, w in zip(shape, want_shape, strict=True)
        ):
            want = str(want_shape).replace("None", "n")  # n: the sample paths, not recorded
            raise ResultFileError(
                f"{path}: arr/{key}: shape {shape} does not match the recorded run's {want}"
            )
        headers[key] = (shape, fortran, dtype)
    n_paths = {shape[0] for key, (shape, _, _) in headers.items() if key.endswith(".paths")}
    if meta["tail"] is not None:
        from invlend.tail import Tilt

        try:
            Tilt.model_validate(meta["tail"])
        except (ValueError, TypeError) as exc:
            raise ResultFileError(f"{path}: meta.json: tail: {exc}") from None
    if not (meta["stopping"] is None or isinstance(meta["stopping"], dict)):
        raise ResultFileError(f"{path}: meta.json: stopping: expected an object or null")
    n_firms = meta["n_portfolios"] * meta["portfolio_size"]
    if len(n_paths) > 1 or max(n_paths) > min(n_firms, L.MAX_SAMPLE_PATHS):
        raise ResultFileError(
            f"{path}: arr/g*.paths: sample paths {sorted(n_paths)} must be one number, at most "
            f"min(firms, {L.MAX_SAMPLE_PATHS}) = {min(n_firms, L.MAX_SAMPLE_PATHS)}"
        )
    need = sum(math.prod(s) * d.itemsize for s, _, d in headers.values())
    have = L.available_bytes()
    if have is not None and need > 0.8 * have:
        raise ResultFileError(
            f"{path}: the arrays need {need / 2**30:.2f} GiB but only {have / 2**30:.2f} GiB "
            "of memory is available"
        )

    arrays = {}
    for key, (shape, fortran, dtype) in headers.items():
        fp, *_ = _open_array(path, zf, stored[key])
        arrays[key] = _read_data(path, f"arr/{key}", fp, shape, fortran, dtype)
    if _digest(meta_text, arrays) != checksum:
        raise ResultFileError(f"{path}: checksum mismatch: the file was altered or truncated")
    if meta["format_version"] == 2:
        arrays["log_weight"] = np.zeros(meta["n_portfolios"])
    run = RunInfo(**{k: meta[k] for k in RunInfo._fields})
    run = run._replace(seed_spawn_key=tuple(run.seed_spawn_key), measures=tuple(run.measures))
    return Stored(scenario, structures, tuple(meta["group_of"]), arrays, run)


# --------------------------------------------------------------------------- metadata


def _is_int(x: Any, low: int = 0) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _parse_meta(path: Path, text: str) -> tuple[dict[str, Any], Scenario, list[Structure]]:
    """The metadata, every field checked; raise :class:`ResultFileError` naming the field."""

    def bad(field: str, expected: str) -> ResultFileError:
        shown = repr(meta[field])
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ResultFileError(f"{path}: meta.json: {field}: expected {expected}, got {shown}")

    try:
        meta = json.loads(text)
    except RecursionError:
        raise ResultFileError(
            f"{path}: meta.json: nested too deeply to be a result's metadata"
        ) from None
    except ValueError as exc:
        raise ResultFileError(f"{path}: meta.json: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ResultFileError(
            f"{path}: meta.json: expected a JSON object, got {type(meta).__name__}"
        )
    version = meta.get("format_version")
    if meta.get("format") != FORMAT or not _is_int(version) or version not in _READS:
        raise ResultFileError(
            f"{path}: format {meta.get('format')!r:.40} v{meta.get('format_version')!r:.20} "
            f"is not {FORMAT} v{FORMAT_VERSION}"
        )
    if version == 2:
        meta = {**meta, "tail": None, "stopping": None}  # a run without a tilt or tolerance
    missing = [k for k in _META_FIELDS if k not in meta]
    if missing:
        raise ResultFileError(f"{path}: meta.json: fields missing: {missing}")
    extra = sorted(set(meta) - set(_META_FIELDS))
    if extra:
        raise ResultFileError(f"{path}: meta.json: unknown fields: {extra}")

    for field in ("n_portfolios", "portfolio_size"):
        if not _is_int(meta[field], low=1):
            raise bad(field, "an integer >= 1")
    seed = meta["seed"]
    if not (_is_int(seed) or (isinstance(seed, list) and all(_is_int(x) for x in seed))):
        raise bad("seed", "a non-negative integer or a list of them")
    key = meta["seed_spawn_key"]
    if not (isinstance(key, list) and all(_is_int(x) for x in key)):
        raise bad("seed_spawn_key", "a list of non-negative integers")
    ran = list(L.BACKENDS)
    if meta["backend"] not in ran:
        raise bad("backend", f"one of {ran}")
    versions = meta["versions"]
    if not (isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())):
        raise bad("versions", "an object of strings")
    if meta["keep"] not in ("firms", "aggregates"):
        raise bad("keep", "'firms' or 'aggregates'")
    measures = meta["measures"]
    if not (isinstance(measures, list) and measures and measures[0] == "real_world"
            and measures == [m for m in MEASURES if m in measures]):  # fmt: skip
        raise bad("measures", f"{list(MEASURES[:1])} or {list(MEASURES)}")
    n_firms = meta["n_portfolios"] * meta["portfolio_size"]
    if meta["keep"] == "firms" and n_firms > L.MAX_FIRMS:
        raise ResultFileError(
            f"{path}: meta.json: n_portfolios: n_portfolios * portfolio_size = {n_firms} "
            f"firms exceeds simulate's limit of {L.MAX_FIRMS} for per-firm results"
        )

    if not isinstance(meta["scenario"], dict):
        raise bad("scenario", "an object")
    try:
        scenario = Scenario.model_validate(meta["scenario"])
    except ValueError as exc:  # pydantic's ValidationError names the field
        raise ResultFileError(f"{path}: meta.json: scenario: {exc}") from None
    if not (isinstance(meta["structures"], list) and meta["structures"]):
        raise bad("structures", "a non-empty list")
    structures = []
    for i, data in enumerate(meta["structures"]):
        if not isinstance(data, dict):
            raise ResultFileError(
                f"{path}: meta.json: structures.{i}: expected an object, got {type(data).__name__}"
            )
        try:
            structures.append(Structure.model_validate(data))
        except ValueError as exc:
            raise ResultFileError(f"{path}: meta.json: structures.{i}: {exc}") from None
    try:
        check_run(scenario, structures)
    except ValueError as exc:
        raise ResultFileError(f"{path}: meta.json: {exc}") from None

    expected = list(linkage_groups(structures))
    group_of = meta["group_of"]
    if not (isinstance(group_of, list) and all(_is_int(g) for g in group_of)):
        raise bad("group_of", "a list of non-negative integers")
    if group_of != expected:
        raise bad("group_of", f"{expected}, the structures' linkage groups")
    return meta, scenario, structures


def _layout(meta: dict[str, Any], scenario: Scenario, structures: list[Structure]) -> dict:
    """Array name -> (shape, dtype) of the recorded run, as :func:`invlend._sim.layout.arrays`.

    The number of sample paths is not recorded: it is ``None`` in the ``.paths`` shapes.
    """
    sizes = run_sizes(scenario, structures, meta["portfolio_size"], None,
                      tuple(meta["measures"]))  # fmt: skip
    layout = L.arrays(sizes, meta["n_portfolios"], meta["keep"] == "firms")
    if meta["format_version"] == 2:
        del layout["log_weight"]  # version 2 had no importance weights: all 0
    return layout
