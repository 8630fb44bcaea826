"""What turns text into vectors or scores.

The encoder and reranker interfaces (:mod:`.base`), the local backends (ONNX, bge,
PyTorch), the Together hosted backend, hub loading and graph tools, and the one
registry that resolves model ids (:mod:`.registry`).

May import: :mod:`core.errors`, :mod:`core.paths`, :mod:`core.parallel`. Nothing else
from the project.
"""
