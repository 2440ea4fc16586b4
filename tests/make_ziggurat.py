"""Write the ziggurat's frozen layer tables, ``src/invlend/_ziggurat.py``, on purpose only.

``invlend.rng._ziggurat_tables`` defines the tables; computing them needs ``exp``, ``log`` and
``sqrt``, whose last bits differ between CPUs (numpy picks SIMD kernels at import). The package
therefore reads them from literal constants, written once by this script and checked against
the definition by ``tests/test_rng.py`` on every machine. Rerun it only if the definition
changes, and bump ``invlend.rng.STREAM_VERSION`` with it.
"""

from __future__ import annotations

from pathlib import Path

from invlend import rng

PATH = Path(__file__).resolve().parent.parent / "src" / "invlend" / "_ziggurat.py"

HEADER = '''"""The ziggurat's layer tables, frozen as exact float64 constants (hex literals).

Written by ``tests/make_ziggurat.py`` from :func:`invlend.rng._ziggurat_tables`, the tables'
definition: ``X`` the layer edges, ``F`` the density ``exp(-x**2 / 2)`` at them. Computing them
takes ``exp`` and ``log``, whose last bits differ between CPUs; as constants they are the same on
every machine, so the normals' fast path (about 99% of draws) is too. ``tests/test_rng.py``
checks them against the definition.
"""

import numpy as np

'''


def render(name: str, values) -> str:
    # The layout ruff format gives, so that the written file is format-clean as it is.
    lines = "\n".join(f'            "{float(v).hex()}",' for v in values)
    head = f"{name} = np.array(\n    [\n        float.fromhex(h)\n        for h in (\n"
    return head + lines + "\n        )\n    ]\n)\n"


def main() -> None:
    x, _, f = rng._ziggurat_tables()
    text = HEADER + render("X", x) + "\n" + render("F", f)
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH} ({x.size} + {f.size} constants)")


if __name__ == "__main__":
    main()
