"""Saved results: every file load cannot read raises one error naming what is wrong.

The crafted files below carry a checksum recomputed over their altered contents (as anyone
can), so only load's own checks -- of the zip directory, the ``.npy`` headers and the
metadata, against the recorded run -- can refuse them.
"""

from __future__ import annotations

import io
import json
import os
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

import invlend as il
from invlend import _resultfile as resultfile
from invlend import store
from invlend._sim import layout


@pytest.fixture(scope="module")
def result():
    return il.simulate(il.Scenario.default(), n_portfolios=6, portfolio_size=9, seed=2,
                       sample_paths=12)  # fmt: skip


@pytest.fixture(scope="module")
def saved(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "run.npz"
    result.save(path)
    return path


# ------------------------------------------------------------------- crafting files


def _contents(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        files = {k: data[k] for k in data.files}
    meta = json.loads(str(files.pop("meta.json")))
    files.pop("checksum")
    return meta, {k.removeprefix("arr/"): v for k, v in files.items()}


def _write(path: Path, meta_text: str, arrays: dict[str, np.ndarray]) -> None:
    """An .npz laid out as save writes it, with a checksum that matches its contents."""
    payload = {f"arr/{k}": v for k, v in arrays.items()}
    payload["meta.json"] = np.array(meta_text)
    payload["checksum"] = np.array(resultfile._digest(meta_text, arrays))
    np.savez(path, **payload)


def _meta(edit):
    """Craft by editing the metadata (a dict) in place."""

    def craft(src: Path, dst: Path) -> None:
        meta, arrays = _contents(src)
        edit(meta)
        _write(dst, json.dumps(meta), arrays)

    return craft


def _text(text: str):
    """Craft with ``text`` as the whole meta.json."""

    def craft(src: Path, dst: Path) -> None:
        _write(dst, text, _contents(src)[1])

    return craft


def _arrays(edit):
    """Craft by editing the arrays (a dict of name -> array) in place."""

    def craft(src: Path, dst: Path) -> None:
        meta, arrays = _contents(src)
        edit(arrays)
        _write(dst, json.dumps(meta), arrays)

    return craft


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _header(shape: tuple, dtype) -> bytes:
    buf = io.BytesIO()
    npy.write_array_header_1_0(
        buf, {"shape": shape, "fortran_order": False, "descr": npy.dtype_to_descr(np.dtype(dtype))}
    )
    return buf.getvalue()


def _zip(replace: dict[str, bytes | None] | None = None, add=(), method=zipfile.ZIP_STORED,
         pad: dict[str, int] | None = None):  # fmt: skip
    """Craft by rewriting the zip: members replaced by raw bytes, padded with zeros, added."""

    def craft(src: Path, dst: Path) -> None:
        with zipfile.ZipFile(src) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
        with zipfile.ZipFile(dst, "w") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate name we want
            for name, data in [*members, *add]:
                data = (replace or {}).get(name, data) + bytes((pad or {}).get(name, 0))
                zf.writestr(name, data, compress_type=method)

    return craft


def _method(name: str, method: int):
    """Craft by marking member ``name`` as compressed with zip method ``method``."""

    def craft(src: Path, dst: Path) -> None:
        _zip()(src, dst)
        with zipfile.ZipFile(dst) as zf:
            local = zf.getinfo(name).header_offset
        data = bytearray(dst.read_bytes())
        central = data.rfind(name.encode()) - 46  # the directory entry's fixed part
        data[local + 8 : local + 10] = method.to_bytes(2, "little")
        data[central + 10 : central + 12] = method.to_bytes(2, "little")
        dst.write_bytes(bytes(data))

    return craft


def _file(data: bytes | None = None, array=None):
    """Craft a file that is not a result: raw bytes or a plain .npy array."""

    def craft(src: Path, dst: Path) -> None:
        if array is None:
            dst.write_bytes(data)
        else:
            np.save(dst, array, allow_pickle=True)
            os.replace(f"{dst}.npy", dst)

    return craft


NPV_BYTES = _npy(np.zeros((6, 9)))
NESTED = "[" * 100_000 + "]" * 100_000
# A meta.json just over the 16 MiB bound (4 bytes a character), padded with valid JSON space.
PADDED = 4 * 2**20 + 1000

#: (what the file is, how to craft it from a saved run, text the error must contain)
REFUSED = [
    ("npy header declares 30 GiB", _zip({"arr/s0.npv.npy": _header((6, 30 * 2**30 // 48), "f8")
                                         + bytes(64)}), ("arr/s0.npv", "declares")),
    ("zip bomb member", _zip(pad={"arr/s0.npv.npy": 32 * 2**20}, method=zipfile.ZIP_DEFLATED),
     ("arr/s0.npv", f"holds {560 + 32 * 2**20} bytes", "declares 560")),
    ("meta.json nested 100000 deep", _text(NESTED), ("meta.json", "nested too deeply")),
    ("meta.json not JSON", _text("{'format': 1"), ("meta.json", "not valid JSON")),
    ("meta.json a list", _text("[1, 2]"), ("meta.json", "expected a JSON object, got list")),
    ("meta.json over 16 MiB", lambda s, d: _text(json.dumps(_contents(s)[0]) + " " * PADDED)(s, d),
     ("meta.json", "more than the 16777216")),
    ("meta.json an int array", _zip({"meta.json.npy": _npy(np.arange(3))}),
     ("meta.json", "expected one string")),
    ("no scenario", _meta(lambda m: m.pop("scenario")), ("fields missing", "scenario")),
    ("an unknown field", _meta(lambda m: m.update(colour="red")), ("unknown fields", "colour")),
    ("format version 1", _meta(lambda m: m.update(format_version=1)),
     ("is not invlend-result v3",)),
    ("measures risk neutral alone", _meta(lambda m: m.update(measures=["risk_neutral"])),
     ("measures", "['real_world']")),
    ('keep="evil"', _meta(lambda m: m.update(keep="evil")), ("keep", "'firms' or", "'evil'")),
    ("n_portfolios a string", _meta(lambda m: m.update(n_portfolios="6")),
     ("meta.json: n_portfolios", "integer >= 1", "'6'")),
    ("portfolio_size true", _meta(lambda m: m.update(portfolio_size=True)),
     ("portfolio_size", "integer >= 1")),
    ("10**12 portfolios", _meta(lambda m: m.update(n_portfolios=10**12)),
     ("n_portfolios", "exceeds")),
    ("seed a string", _meta(lambda m: m.update(seed="two")), ("seed", "non-negative integer")),
    ("spawn key a number", _meta(lambda m: m.update(seed_spawn_key=3)), ("seed_spawn_key",)),
    ("backend unknown", _meta(lambda m: m.update(backend="gpu")), ("backend", "'gpu'")),
    ("versions a list", _meta(lambda m: m.update(versions=["1"])), ("versions", "object")),
    ("group_of not a list", _meta(lambda m: m.update(group_of=0)), ("group_of", "a list")),
    ("group_of not the linkages'", _meta(lambda m: m.update(group_of=[0, 1, 1])),
     ("group_of", "[0, 0, 1]")),
    ("scenario a string", _meta(lambda m: m.update(scenario="default")),
     ("scenario", "an object")),
    ("scenario invalid", _meta(lambda m: m["scenario"]["stages"][0].update(volatility=-1.0)),
     ("meta.json: scenario", "volatility", "greater than or equal to 0")),
    ("structures empty", _meta(lambda m: m.update(structures=[])), ("structures", "non-empty")),
    ("structure a list", _meta(lambda m: m["structures"].__setitem__(1, [])),
     ("structures.1", "expected an object")),
    ("structure invalid", _meta(lambda m: m["structures"][0]["loan"].update(rate="4.5%")),
     ("structures.0", "rate", "valid number")),
    ("structure beyond the horizon",
     _meta(lambda m: m["structures"][0]["loan"].update(maturity_years=9.0)),
     ("maturity_years", "horizon")),
    ("npv of shape (3,)", _arrays(lambda a: a.update({"s0.npv": np.zeros(3)})),
     ("arr/s0.npv", "shape (3,)", "(6, 9)")),
    ("event as int64", _arrays(lambda a: a.update({"g0.event": a["g0.event"].astype(np.int64)})),
     ("arr/g0.event", "dtype int64", "int8")),
    ("two checkpoints", _arrays(lambda a: a.update({"g0.chk": np.zeros((6, 9, 2))})),
     ("arr/g0.chk", "(6, 9, 1)")),
    ("paths of 60 steps", _arrays(lambda a: a.update({"g0.paths": np.zeros((12, 60))})),
     ("arr/g0.paths", "(n, 61)")),
    ("paths disagree", _arrays(lambda a: a.update({"g1.paths": np.zeros((11, 61))})),
     ("paths", "[11, 12]", "one number")),
    ("more paths than firms", _arrays(lambda a: a.update({"g0.paths": np.zeros((60, 61)),
                                                          "g1.paths": np.zeros((60, 61))})),
     ("paths", "min(firms, 100000) = 54")),
    ("array missing", _arrays(lambda a: a.pop("s0.irr")), ("arrays missing", "arr/s0.irr")),
    ("array extra", _arrays(lambda a: a.update({"s9.npv": np.zeros((6, 9))})),
     ("does not have", "arr/s9.npv")),
    ("array outside arr/", _zip(add=[("cold_share.npy", _npy(np.zeros(6)))]),
     ("does not have", "'cold_share'")),
    ("a text member", _zip(add=[("readme.txt", b"hello")]), ("unexpected member", "readme.txt")),
    ("a member twice", _zip(add=[("arr/s0.irr.npy", _npy(np.zeros(6)))]),
     ("more than once", "arr/s0.irr.npy")),
    ("unsupported zip method", _method("arr/s0.npv.npy", 6),
     ("arr/s0.npv.npy", "compression method 6")),
    ("lzma zip method", _zip(method=zipfile.ZIP_LZMA), ("compression method 14",)),
    ("npy header cut short", _zip({"arr/s0.npv.npy": b"\x93NUMPY\x01\x00\xff"}),
     ("arr/s0.npv", "not a readable .npy header")),
    ("npy shape negative", _zip({"arr/s0.irr.npy": _header((-1, 0), "f8")}),
     ("arr/s0.irr", "negative shape (-1, 0)")),
    ("npy version 9", _zip({"arr/s0.npv.npy": b"\x93NUMPY\x09\x00" + NPV_BYTES[8:]}),
     ("arr/s0.npv", "version 9.0")),
    ("a plain .npy of numbers", _file(array=np.arange(3.0)), ("not an invlend result", ".npy")),
    ("a plain .npy of objects", _file(array=np.array([{}], dtype=object)),
     ("not an invlend result", ".npy")),
    ("not a zip", _file(b"hello, world"), ("not a readable invlend result", "not a zip file")),
]  # fmt: skip


@pytest.mark.parametrize(("what", "craft", "fragments"), REFUSED, ids=[c[0] for c in REFUSED])
def test_load_refuses_crafted_file_before_reading_any_array(
    what, craft, fragments, saved, tmp_path, monkeypatch
):
    bad = tmp_path / "bad.npz"
    craft(saved, bad)
    read = []
    real = resultfile._read_data
    monkeypatch.setattr(resultfile, "_read_data", lambda *a: read.append(a[1]) or real(*a))
    with pytest.raises(store.ResultFileError) as info:
        il.load(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: ")
    for text in fragments:
        assert text in message, (text, message)
    assert not [name for name in read if name.startswith("arr/")], read


def test_load_refusals_are_tabled():
    assert len(REFUSED) >= 40


def test_load_error_is_a_value_error(saved, tmp_path):
    assert issubclass(store.ResultFileError, ValueError)
    with pytest.raises(store.ResultFileError, match="no such file"):
        il.load(tmp_path / "missing.npz")
    with pytest.raises(store.ResultFileError, match="not a readable invlend result"):
        il.load(tmp_path)  # a directory


def test_checksum_still_catches_an_altered_array(saved, tmp_path):
    meta, arrays = _contents(saved)
    text = json.dumps(meta)
    good = resultfile._digest(text, arrays)
    arrays["s0.irr"] = arrays["s0.irr"] + 1.0
    payload = {f"arr/{k}": v for k, v in arrays.items()}
    np.savez(tmp_path / "x.npz", **payload, **{"meta.json": np.array(text)},
             checksum=np.array(good))  # fmt: skip
    with pytest.raises(store.ResultFileError, match="checksum mismatch"):
        il.load(tmp_path / "x.npz")


def test_load_refuses_file_too_large_for_memory(saved, monkeypatch):
    monkeypatch.setattr(layout, "available_bytes", lambda: 10_000)
    with pytest.raises(store.ResultFileError, match=r"need 0\.00 GiB but only 0\.00 GiB"):
        il.load(saved)


def test_load_of_damaged_bytes_raises_only_result_file_errors(tmp_path):
    small = il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=3, seed=3,
                        sample_paths=2)  # fmt: skip
    small.save(tmp_path / "run.npz")
    data = (tmp_path / "run.npz").read_bytes()
    bad = tmp_path / "bad.npz"
    refused = 0
    positions = range(0, len(data), max(1, len(data) // 250))
    for i in positions:
        for variant in (data[:i], data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]):
            bad.write_bytes(variant)
            try:
                il.load(bad)
            except store.ResultFileError:
                refused += 1
    # Some flips land in fields nothing reads (a timestamp); every truncation is refused.
    assert refused >= len(positions)


def test_load_round_trips_both_keeps(result, tmp_path):
    for keep in ("firms", "aggregates"):
        res = result if keep == "firms" else il.simulate(
            il.Scenario.default(), n_portfolios=6, portfolio_size=9, seed=2, keep=keep)  # fmt: skip
        res.save(tmp_path / "r.npz")
        back = il.load(tmp_path / "r.npz")
        assert back.meta == res.meta and set(back.arrays) == set(res.arrays)
        for k, v in res.arrays.items():
            np.testing.assert_array_equal(back.arrays[k], v, err_msg=k)


# --------------------------------------------------------------------------- saving

#: (what the path is, how to make it from a folder, text the error must contain)
SAVE_REFUSED = [
    ("empty", lambda folder: "", "path: empty"),
    ("an existing directory", lambda folder: folder, "is a directory"),
    ("the working directory", lambda folder: ".", "path: . is a directory"),
    ("in a missing folder", lambda folder: folder / "no" / "run.npz", "does not exist"),
]


@pytest.mark.parametrize(("what", "make", "fragment"), SAVE_REFUSED,
                         ids=[c[0] for c in SAVE_REFUSED])  # fmt: skip
def test_save_refuses_bad_path_naming_path(what, make, fragment, result, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        result.save(make(tmp_path))
    assert str(info.value).startswith("path: ") and fragment in str(info.value), info.value
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_save_gives_the_mode_of_a_new_file(umask, mode, result, tmp_path):
    old = os.umask(umask)
    try:
        result.save(tmp_path / "run.npz")
        (tmp_path / "plain").touch()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run.npz").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == mode


def test_save_reads_umask_and_leaves_it_without_proc(monkeypatch):
    def no_proc(*a, **k):
        raise OSError("no /proc here")

    monkeypatch.setattr(resultfile, "open", no_proc, raising=False)
    old = os.umask(0o027)
    try:
        assert resultfile._umask() == 0o027
        assert os.umask(0o027) == 0o027  # still in force
    finally:
        os.umask(old)


def test_save_syncs_the_folder_after_the_rename(result, tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    synced = []
    real = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        synced.append((stat.S_ISDIR(st.st_mode), st.st_ino, path.exists()))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    result.save(path)
    assert synced[-1] == (True, tmp_path.stat().st_ino, True), synced


def test_save_where_the_folder_cannot_be_synced(result, tmp_path, monkeypatch):
    real = os.fsync

    def refuse_folders(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real(fd)

    monkeypatch.setattr(os, "fsync", refuse_folders)
    result.save(tmp_path / "run.npz")
    assert il.load(tmp_path / "run.npz").meta == result.meta


def test_a_version_2_file_loads_as_a_plain_run(result, saved, tmp_path):
    """Files written before importance sampling (format 2) have no weights: all 1, no tilt."""
    meta, arrays = _contents(saved)
    meta["format_version"] = 2
    del meta["tail"], meta["stopping"]
    del arrays["log_weight"]
    old = tmp_path / "v2.npz"
    _write(old, json.dumps(meta), arrays)
    back = il.load(old)
    assert back.tilt is None and back.stopping is None
    assert np.all(back.weights == 1.0)
    for n in result:
        assert np.array_equal(back[n].aggregates, result[n].aggregates)
