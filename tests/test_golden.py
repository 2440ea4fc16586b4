"""Golden arrays: an unintended change of the random streams or the model fails loudly.

Integers (events, steps, stages, rounds) must match exactly; floats to 1e-12 relative, which
absorbs last-bit differences of the maths library on another machine but not a changed draw.
Regenerate on purpose with ``python tests/make_golden.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from invlend import rng
from make_golden import PATH, arrays, golden_run


@pytest.fixture(scope="module")
def golden():
    with np.load(PATH) as data:
        return {k: data[k] for k in data.files}


def test_stream_version_is_the_frozen_one(golden):
    assert int(golden["stream_version"]) == rng.STREAM_VERSION


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_run_matches_golden_arrays(golden, backend):
    now = arrays(golden_run(backend))
    assert set(now) == set(golden) - {"stream_version"}
    for key, value in now.items():
        ref = golden[key]
        if np.issubdtype(ref.dtype, np.integer):
            np.testing.assert_array_equal(value, ref, err_msg=key)
        else:
            np.testing.assert_allclose(value, ref, rtol=1e-12, atol=0, err_msg=key)
