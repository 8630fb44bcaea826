"""What turns text into vectors or scores.

The encoder and reranker interfaces (:mod:`.base`), the local backends (ONNX, bge,
PyTorch), the Together hosted backend, hub loading and graph tools, and the one
registry that resolves model ids (:mod:`.registry`).

It is the lowest layer, so it also holds what every layer uses: the typed errors
(:mod:`.errors`), the cache paths (:mod:`.paths`) and the worker pool (:mod:`.parallel`).

May import: nothing from the project outside this package.
"""
