"""``python -m core bench``: how fast the workbench is on this machine, in one run.

Measured, in this order:

* **machine**: CPU, the instruction sets onnxruntime and PyTorch can use, load average.
* **encode**: corpus encoding throughput (docs/s) of the default bi-encoder on movies
  and on the first N SciFact documents; the same model on PyTorch fp32 (the seed code),
  PyTorch with bf16 autocast, and the int8 ONNX variant, with how often the int8
  vectors change the reranked top 10.
* **latency**: per stage over repeated movie queries (median, p90): query encoding,
  exact search, reranking 25 / 50 / 100 candidates (score cache off), a rerank answered
  from the score cache, and a whole query (encode + search + rerank 50).
* **rerank comparison**: 50 candidates per query reranked by the optimised ONNX
  reranker, the unoptimised one (one pair per call, onnxruntime's default threads),
  the fused-and-requantised graph (:mod:`core.models.onnx_optimize`, a candidate that is not
  used), a plain onnxruntime loop padding every pair to 512 tokens, and
  sentence-transformers' ``CrossEncoder`` (PyTorch fp32) over the same weights rebuilt
  from the INT8 ONNX (:mod:`core.models.torch_cross_encoder`); speed ratios, max |logit
  difference| and top-10 agreement; the same for the ONNX graphs on SciFact queries
  with long documents (max length 512).
* **cold start**: a new process that imports, loads both models, reads the cached
  embeddings and answers one query (disk cache warm); its peak memory.
* **profile**: onnxruntime's per-operator time for one rerank of 50 (packaged graph,
  and the fused one).

Baselines that take seconds per query run on fewer queries (said in the output).

Modules, one per section: :mod:`~core.bench.machine`, :mod:`~core.bench.encoding`,
:mod:`~core.bench.latency` (latency, workers x threads, cold start),
:mod:`~core.bench.alternatives` (rerank comparison, whole-pipeline agreement),
:mod:`~core.bench.long_documents` (SciFact), :mod:`~core.bench.profile`, and
:mod:`~core.bench.report` (targets, the printed tables); :mod:`~core.bench.run` runs
them in order; :mod:`~core.bench.common` holds what they share.

May import: every package of ``core`` (it is the top layer, beside the CLI).
"""
