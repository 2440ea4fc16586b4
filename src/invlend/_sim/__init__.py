"""The simulation internals: the schema, the lowering and the backends (private).

Overview
--------
``layout`` defines the one schema of a run (event codes, output fields, aggregate columns,
the run record); ``lowering`` turns validated models into the named tuples of plain arrays the
kernels read; ``backend`` is the interface the engine's loop calls, implemented by ``cpu``
(numba), ``numpy_backend`` (the vectorised oracle) and ``cuda`` (the cpu kernels compiled for a
GPU, imported only when asked for); ``irr`` is the one IRR solver of the cpu and cuda kernels.
Nothing here imports :mod:`invlend.config` except ``lowering``. ``docs/architecture.md`` has
the map.
"""
