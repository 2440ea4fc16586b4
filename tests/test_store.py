"""Interface tier: saved results are never lost or corrupt.

``save``/``load`` round-trip every array and input (firm-level and aggregates only), a
truncated or altered file is refused (checksum), and an interrupted save leaves the old file
and no temporary. Crafted and damaged files are in ``test_store_hardening.py``.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import invlend as il
from invlend import store

# ---------------------------------------------------------------------- saved results


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    res = il.simulate(il.Scenario.default(), n_portfolios=6, portfolio_size=9, seed=2,
                      sample_paths=12)  # fmt: skip
    path = tmp_path_factory.mktemp("store") / "run.npz"
    res.save(path)
    return res, path


def test_save_load_round_trips_every_array_and_input(saved_pair):
    res, path = saved_pair
    back = il.load(path)
    assert set(back.arrays) == set(res.arrays)
    for k, v in res.arrays.items():
        assert back.arrays[k].dtype == v.dtype
        np.testing.assert_array_equal(back.arrays[k], v, err_msg=k)
    assert back.meta == res.meta and back.structures == res.structures
    assert str(back.summary(n_boot=30)) == str(res.summary(n_boot=30))
    for n in res:
        assert back[n].outcomes.time.tolist() == res[n].outcomes.time.tolist()


def test_save_load_aggregates_only(tmp_path):
    res = il.simulate(il.Scenario.default(), n_portfolios=5, portfolio_size=4, seed=2,
                      keep="aggregates")  # fmt: skip
    res.save(tmp_path / "a.npz")
    back = il.load(tmp_path / "a.npz")
    assert back.keep == "aggregates" and back["pure_loan"].npv is None
    np.testing.assert_array_equal(back["pure_loan"].aggregates, res["pure_loan"].aggregates)


def test_truncated_file_is_refused(saved_pair, tmp_path):
    _, path = saved_pair
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable invlend result"):
        il.load(bad)


def test_altered_array_is_refused_by_the_checksum(saved_pair, tmp_path):
    _, path = saved_pair
    with np.load(path, allow_pickle=False) as data:
        files = {k: data[k] for k in data.files}
    npv = files["arr/s0.npv"].copy()
    npv.flat[np.flatnonzero(np.isfinite(npv))[0]] += 1.0  # an accepted loan's NPV
    files["arr/s0.npv"] = npv
    bad = tmp_path / "altered.npz"
    np.savez(bad, **files)
    with pytest.raises(ValueError, match="checksum mismatch"):
        il.load(bad)
    with pytest.raises(ValueError, match="no such file"):
        il.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="not an invlend result"):
        il.load(other)


def test_interrupted_save_leaves_the_old_file_and_no_temporary(saved_pair, tmp_path,
                                                               monkeypatch):  # fmt: skip
    res, _ = saved_pair
    path = tmp_path / "run.npz"
    res.save(path)
    before = path.read_bytes()

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    monkeypatch.setattr(np, "savez_compressed", crash)
    for compress in (False, True):
        with pytest.raises(KeyboardInterrupt):
            store.save(res, path, compress=compress)
        assert path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def test_save_stores_by_default_and_compresses_on_request(saved_pair, tmp_path):
    """The default writes the arrays stored (disk speed); both forms load bit for bit."""
    res, _ = saved_pair
    stored, packed = tmp_path / "stored.npz", tmp_path / "packed.npz"
    res.save(stored)
    store.save(res, packed, compress=True)
    methods = {
        p: {m.compress_type for m in zipfile.ZipFile(p).infolist()} for p in (stored, packed)
    }
    assert methods[stored] == {zipfile.ZIP_STORED}
    assert methods[packed] == {zipfile.ZIP_DEFLATED}
    assert packed.stat().st_size < stored.stat().st_size
    for p in (stored, packed):
        back = il.load(p)
        for key, a in res.arrays.items():
            np.testing.assert_array_equal(back.arrays[key], a)
    with pytest.raises(TypeError, match="compress"):
        store.save(res, stored, compress="yes")
