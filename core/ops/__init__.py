"""Operational commands: the server's warm-up (``warmup``), the load and cold-start tests
of a running app (``loadtest``) and the million-document collection bench
(``collection_bench``).

Top layer, beside ``cli`` and ``bench``. May import every ``core`` package; nothing in
``core`` below the top imports it.
"""
