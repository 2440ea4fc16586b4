"""Saving and loading results: an open format, checked on load, written atomically.

Overview
--------
:func:`save` writes one ``.npz`` file (a zip of ``.npy`` arrays, readable by any numpy
without pickle) holding every array of the result, a JSON document with the full inputs and
provenance (seed, spawn key, backend, versions, sizes), and a SHA-256 checksum over both. The
file is written under a temporary name in the target folder and renamed into place, so an
interrupted save never leaves a half-written result; it gets the permissions of any new file
(``0o666`` less the umask).

:func:`load` trusts nothing in the file. It reads the zip directory and every ``.npy``
header first, checks the metadata field by field, works out from it the arrays the recorded
run must hold (names, shapes, dtypes) and compares them with the headers and the members'
sizes, all before it reads an array in full; then it checks the checksum. Any file it cannot
read as a result, for whatever reason, raises :class:`ResultFileError` saying what is wrong.
The checksum detects accidental damage (a flipped bit, a truncated copy); it cannot detect
deliberate tampering, since anyone can recompute a SHA-256 over altered contents.

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

from pathlib import Path

from invlend import _resultfile
from invlend._resultfile import FORMAT, FORMAT_VERSION, ResultFileError
from invlend.results import SimulationResult

__all__ = ["FORMAT", "FORMAT_VERSION", "ResultFileError", "load", "save"]


def save(result: SimulationResult, path: str | Path, compress: bool = False) -> None:
    """Write ``result`` to ``path`` (an ``.npz`` file), atomically.

    Parameters
    ----------
    result : SimulationResult
        The result to write.
    path : str or pathlib.Path
        The file to write, in an existing folder; an existing file there is replaced.
    compress : bool, default False
        Deflate the arrays. The default writes them stored, at disk speed; compression makes
        the file about half the size (the event codes compress well, the money arrays little)
        at several times the time. :func:`load` reads either.
    """
    _resultfile.write(result, path, compress)


def load(path: str | Path) -> SimulationResult:
    """Read a result written by :func:`save`; refuse a damaged, altered or foreign file.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.

    Returns
    -------
    SimulationResult
        The saved result, bit for bit.

    Raises
    ------
    ResultFileError
        For any file that is not a readable invlend result, with a message naming what is
        wrong; the file's metadata, array names, shapes, dtypes and sizes are checked before
        any array is read in full.
    """
    return SimulationResult.from_arrays(*_resultfile.read(path))
