"""Saving and loading results: an open format, checked on load, written atomically.

Overview
--------
:func:`save` writes one ``.npz`` file (a zip of ``.npy`` arrays, readable by any numpy
without pickle) holding every array of the result, a JSON document with the full inputs and
provenance (seed, spawn key, backend, versions, sizes), and a SHA-256 checksum over both. The
file is written under a temporary name in the target folder and renamed into place, so an
interrupted save never leaves a half-written result. :func:`load` refuses a file whose
checksum does not match (altered or truncated) with a clear error.

Example
-------
>>> import invlend as il, tempfile, os
>>> res = il.simulate(il.Scenario.default(), n_portfolios=4, portfolio_size=5, seed=1)
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> res.save(path)
>>> il.load(path)["pure_loan"].npv.shape
(4, 5)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from invlend.config import Scenario, Structure

__all__ = ["load", "save"]

FORMAT = "invlend-result"
FORMAT_VERSION = 1


def _digest(meta_text: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_text.encode("utf-8"))
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"\0{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(result, path: str | Path) -> None:
    """Write ``result`` to ``path`` (an ``.npz`` file), atomically."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "n_portfolios": result.n_portfolios,
        "portfolio_size": result.portfolio_size,
        "seed": result.seed,
        "seed_spawn_key": list(result.seed_spawn_key),
        "backend": result.backend,
        "versions": result.versions,
        "keep": result.keep,
        "group_of": list(result._group_of),
        "scenario": result.scenario.model_dump(mode="json"),
        "structures": [s.model_dump(mode="json") for s in result.structures],
    }
    meta_text = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    arrays = dict(result._arrays)
    payload = {f"arr/{k}": v for k, v in arrays.items()}
    payload["meta.json"] = np.array(meta_text)
    payload["checksum"] = np.array(_digest(meta_text, arrays))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"path: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path):
    """Read a result written by :func:`save`; refuse a damaged or altered file."""
    from invlend.results import SimulationResult

    path = Path(path)
    try:
        # Our own handle, so a damaged file is closed whatever np.load makes of it.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable invlend result ({exc})") from None
    if "meta.json" not in files or "checksum" not in files:
        raise ValueError(f"{path}: not an invlend result (no meta.json or checksum)")
    meta_text = str(files.pop("meta.json"))
    checksum = str(files.pop("checksum"))
    arrays = {k.removeprefix("arr/"): v for k, v in files.items()}
    if _digest(meta_text, arrays) != checksum:
        raise ValueError(f"{path}: checksum mismatch: the file was altered or truncated")
    meta = json.loads(meta_text)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {meta.get('format')} v{meta.get('format_version')} is not "
            f"{FORMAT} v{FORMAT_VERSION}"
        )
    return SimulationResult._build(
        scenario=Scenario.model_validate(meta["scenario"]),
        structures=[Structure.model_validate(s) for s in meta["structures"]],
        group_of=meta["group_of"],
        arrays=arrays,
        n_portfolios=meta["n_portfolios"],
        portfolio_size=meta["portfolio_size"],
        seed=meta["seed"],
        seed_spawn_key=meta["seed_spawn_key"],
        backend=meta["backend"],
        versions=meta["versions"],
        keep=meta["keep"],
    )
