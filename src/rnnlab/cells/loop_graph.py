"""Moved to :mod:`rnnlab.cells.backends.cuda_graph` (the CUDA-graph backend); this name stays
for the code that still imports it (``rnnlab.run.train``, tests/test_cells_parity.py). Only torch is
imported here."""

from .backends.cuda_graph import (  # noqa: F401
    _LOOPS,
    MAX_GRAPHS,
    CudaGraphBackend,
    GraphedLoop,
    clear,
    graphs_enabled,
)

__all__ = ["CudaGraphBackend", "GraphedLoop", "clear", "graphs_enabled"]
