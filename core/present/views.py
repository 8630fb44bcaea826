"""What the workbench shows, computed without Streamlit: settings in a shareable URL,
badges, summary figures, and export tables.

The app is a thin layer over these functions, so everything a user sees can be tested
in plain pytest.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from core.data.csvsafe import LINE_END, spreadsheet_safe_row
from core.models.allow import model_refusal
from core.models.base import PACKAGED_CROSS_ENCODER
from core.quality.evaluation_report import EvaluationReport
from core.quality.metrics import kendall_tau, overlap_at_k
from core.search.fusion import FUSION_METHODS
from core.search.passages import AGGREGATES, DEFAULT_AGGREGATE, MIN_WINDOW, PassageSettings
from core.search.pipeline import Candidate, SearchResult
from core.search.retrievers import RETRIEVER_KINDS, SCORE_LABELS

CANDIDATES_RANGE = (10, 200)
RESULTS_RANGE = (1, 50)
NO_RERANK = "none"
ROW_IDS = "(row)"
RERANKER_CHOICES = {
    PACKAGED_CROSS_ENCODER: "Local cross-encoder (MiniLM-L-12, INT8 ONNX)",
    "sentence-transformers": "sentence-transformers CrossEncoder (model id)",
    "together": "Together rerank (hosted)",
    NO_RERANK: "None: retrieval only (baseline)",
}
ENCODER_CHOICES = {
    "local": "Local sentence-transformers",
    "together": "Together embeddings (hosted)",
}


def reranker_choice(reranker: str) -> tuple[str, str]:
    """Split a reranker id into (picker choice, model id typed in its box)."""
    if reranker in (PACKAGED_CROSS_ENCODER, NO_RERANK):
        return reranker, ""
    if reranker.startswith("together:"):
        return "together", reranker.removeprefix("together:")
    return "sentence-transformers", reranker


def encoder_choice(encoder: str) -> tuple[str, str]:
    """Split an encoder id into (backend choice, model id)."""
    if encoder.startswith("together:"):
        return "together", encoder.removeprefix("together:")
    return "local", encoder


EXAMPLE_QUERIES = {
    "movies": (
        "super hero mystery action movie about bats",
        "a heist that goes wrong",
        "astronauts stranded far from earth",
        "a toy that comes to life",
        "lawyer defends an innocent man in the south",
    ),
    "sample": (
        "how do I get bats out of my roof without hurting them",
        "is the silver liquid from a broken thermometer dangerous to breathe",
        "how long should I let wood dry before burning it in the stove",
        "my python gets scared and curls up when I pick it up",
    ),
}


# Short URL keys, stable across versions: links people shared keep working.
# ("embed" is reserved by Streamlit.)
URL_KEYS = {
    "dataset": "dataset",
    "query": "q",
    "candidates": "k",
    "results": "n",
    "embed_fields": "efields",
    "rerank_fields": "rfields",
    "encoder": "encoder",
    "reranker": "reranker",
    "id_field": "idf",
    "title_field": "tf",
    "retriever": "ret",
    "fusion_weight": "fw",
    "fusion": "fm",
    "rrf_k": "rrfk",
    "passages": "psg",
    "window": "pw",
    "stride": "ps",
    "dense_passages": "dp",
}
FUSION_WEIGHT_STEP = 0.1
PASSAGE_TOKENS_MAX = 512
"""Largest passage window or stride a link or the sidebar sets (0: the default, "all
that fits" for the window and "half the window" for the stride)."""
LINK_FLAGS = {"1": True, "true": True, "0": False, "false": False}
RRF_K_RANGE = (0, 1000)
MAX_QUERY_CHARS = 1000
"""Longest query accepted. The query travels in the share link: 1,000 characters are at
most 12 KB percent-encoded (4-byte UTF-8 characters), far below the 64 KB header limit of
Streamlit's web server (tornado) and within the 16 KB request line common proxies accept;
the reranker reads at most 512 tokens of query and document together anyway."""


def clip_query(text: str) -> tuple[str, str | None]:
    """``text`` cut to :data:`MAX_QUERY_CHARS`, and a one-line notice when it was cut."""
    if len(text) <= MAX_QUERY_CHARS:
        return text, None
    return text[:MAX_QUERY_CHARS], (
        f"the query has {len(text):,} characters; only the first {MAX_QUERY_CHARS:,} are used"
    )


@dataclass(frozen=True)
class SearchSettings:
    """Everything that defines a view; round-trips through URL query parameters.

    ``reranker`` is :data:`NO_RERANK`, the packaged cross-encoder id, or any
    sentence-transformers model id. Empty field tuples mean "the dataset's defaults";
    for uploads, an empty ``id_field`` / ``title_field`` means "the suggested one" and
    :data:`ROW_IDS` means "row positions as ids".
    Secrets are never part of it.
    """

    dataset: str = "movies"
    query: str = ""
    candidates: int = 50
    results: int = 10
    embed_fields: tuple[str, ...] = ()
    rerank_fields: tuple[str, ...] = ()
    encoder: str = "sentence-transformers/all-MiniLM-L6-v2"
    reranker: str = PACKAGED_CROSS_ENCODER
    id_field: str = ""
    title_field: str = ""
    retriever: str = "dense"
    fusion_weight: float = 1.0
    fusion: str = "linear"
    rrf_k: int = 60
    passages: str = DEFAULT_AGGREGATE
    window: int = 0
    stride: int = 0
    dense_passages: bool = False

    @property
    def fused(self) -> bool:
        """Whether the final order blends both stages' scores."""
        return self.reranker != NO_RERANK and self.fusion_weight < 1.0

    def to_params(self) -> dict[str, str]:
        """Query parameters for this view; defaults are left out to keep links short."""
        default = SearchSettings()
        params = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name) and f.name != "dataset":
                continue
            if isinstance(value, bool):
                value = "1" if value else "0"
            params[URL_KEYS[f.name]] = ",".join(value) if isinstance(value, tuple) else str(value)
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> tuple[SearchSettings, list[str]]:
        """Settings from query parameters, and a warning per value that was ignored."""
        warnings: list[str] = []
        values: dict[str, Any] = {}
        get = {key: params.get(short) for key, short in URL_KEYS.items()}
        for name in ("dataset", "query", "encoder", "reranker", "id_field", "title_field"):
            if get[name] is not None and str(get[name]).strip():
                values[name] = str(get[name]).strip()
        if "query" in values:
            values["query"], cut = clip_query(values["query"])
            if cut:
                warnings.append(f"q: {cut}")
        for name, role in (("encoder", "encoder"), ("reranker", "reranker")):
            model_id = values.get(name)
            if model_id is None or (name == "reranker" and model_id == NO_RERANK):
                continue
            refusal = model_refusal(model_id, role, origin="link")
            if refusal is not None:
                default = getattr(cls, name)
                warnings.append(f"{refusal}; using {default}")
                del values[name]
        for name, choices in (
            ("retriever", RETRIEVER_KINDS),
            ("fusion", FUSION_METHODS),
            ("passages", tuple(AGGREGATES)),
        ):
            raw = get[name]
            if raw is None or not str(raw).strip():
                continue
            if str(raw).strip() in choices:
                values[name] = str(raw).strip()
            else:
                warnings.append(
                    f"ignored {URL_KEYS[name]}={raw!r}: not one of {', '.join(choices)}"
                )
        raw = get["fusion_weight"]
        if raw is not None and str(raw).strip():
            try:
                weight = float(raw)
            except ValueError:
                weight = math.nan
            if not math.isfinite(weight):
                warnings.append(f"ignored fw={raw!r}: not a finite number between 0 and 1")
            else:
                if not 0.0 <= weight <= 1.0:
                    warnings.append(
                        f"fw={weight:g} is outside 0–1; using {min(max(weight, 0), 1):g}"
                    )
                values["fusion_weight"] = round(min(max(weight, 0.0), 1.0), 2)
        for name, (low, high) in (
            ("candidates", CANDIDATES_RANGE),
            ("results", RESULTS_RANGE),
            ("rrf_k", RRF_K_RANGE),
        ):
            raw = get[name]
            if raw is None or not str(raw).strip():
                continue
            try:
                number = int(raw)
            except ValueError:
                warnings.append(f"ignored {URL_KEYS[name]}={raw!r}: not a whole number")
                continue
            if not low <= number <= high:
                clamped = min(max(number, low), high)
                warnings.append(
                    f"{URL_KEYS[name]}={number} is outside {low}–{high}; using {clamped}"
                )
                number = clamped
            values[name] = number
        for name in ("embed_fields", "rerank_fields"):
            raw = get[name]
            if raw:
                values[name] = tuple(p.strip() for p in str(raw).split(",") if p.strip())
        _passage_params(get, values, warnings)
        return cls(**values), warnings

    def passage_settings(self) -> PassageSettings:
        """How the reranker reads long texts (its aggregate, window and stride)."""
        return PassageSettings(self.passages, self.window or None, self.stride or None)

    def dense_passage_settings(self) -> PassageSettings | None:
        """How the dense first stage cuts long texts (same window and stride, best
        passage per document); None when it embeds one vector per document."""
        if not self.dense_passages:
            return None
        return PassageSettings("max", self.window or None, self.stride or None)

    def with_dataset_fields(self, available: tuple[str, ...]) -> tuple[SearchSettings, list[str]]:
        """Drop chosen fields the dataset lacks, with a warning naming them."""
        warnings = []
        changes = {}
        for name in ("embed_fields", "rerank_fields"):
            chosen = getattr(self, name)
            kept = tuple(f for f in chosen if f in available)
            if kept != chosen:
                dropped = ", ".join(f for f in chosen if f not in available)
                warnings.append(f"this dataset has no field(s) {dropped}; they were left out")
                changes[name] = kept
        return replace(self, **changes), warnings


def _passage_params(get: Mapping[str, Any], values: dict[str, Any], warnings: list[str]) -> None:
    """Read the passage window, stride and dense-passages flag of a link into ``values``
    (0: the default), with a warning per value ignored or changed."""
    for name, low in (("window", MIN_WINDOW), ("stride", 1)):
        raw = get[name]
        if raw is None or not str(raw).strip():
            continue
        key = URL_KEYS[name]
        try:
            number = int(str(raw).strip())
        except ValueError:
            warnings.append(f"ignored {key}={raw!r}: not a whole number")
            continue
        if number != 0 and not low <= number <= PASSAGE_TOKENS_MAX:
            clamped = min(max(number, low), PASSAGE_TOKENS_MAX)
            warnings.append(
                f"{key}={number} is outside {low}–{PASSAGE_TOKENS_MAX} tokens (0: default); "
                f"using {clamped}"
            )
            number = clamped
        values[name] = max(number, 0)
    window, stride = values.get("window", 0), values.get("stride", 0)
    if window and stride > window:
        warnings.append(
            f"{URL_KEYS['stride']}={stride} is above the window ({window}): text between "
            "passages would never be read; using half the window"
        )
        values["stride"] = 0
    raw = get["dense_passages"]
    if raw is not None and str(raw).strip():
        flag = LINK_FLAGS.get(str(raw).strip().lower())
        if flag is None:
            warnings.append(f"ignored {URL_KEYS['dense_passages']}={raw!r}: not 1 or 0")
        else:
            values["dense_passages"] = flag


def badge(c: Candidate) -> str:
    """Short movement badge: ``▲ 3``, ``▼ 2``, ``=``, or ``new · from #37``."""
    move = c.movement
    if move is None:
        return ""
    if c.entered:
        return f"new · from #{c.retrieval_rank}"
    if move > 0:
        return f"▲ {move}"
    if move < 0:
        return f"▼ {-move}"
    return "="


def direction(c: Candidate) -> str:
    """``up``, ``down``, ``same`` or ``none`` (no reranker)."""
    move = c.movement
    if move is None:
        return "none"
    return "up" if move > 0 else "down" if move < 0 else "same"


@dataclass(frozen=True)
class Summary:
    """Figures comparing the retrieval order and the reranked order."""

    kendall_tau: float
    overlap: float
    from_outside: int
    moved_up: int
    moved_down: int
    unchanged: int
    truncated: int
    top_changed: bool = field(default=False)


def summarize(result: SearchResult) -> Summary | None:
    """Kendall tau over all candidates, overlap of the two top-N sets, and counts of
    top-N results that came from outside the retrieval top-N; None without a reranker."""
    if result.reranker is None or not result.candidates:
        return None
    retrieval = [c.id for c in result.candidates]
    final = [c.id for c in result.reranked]
    top = result.top_final
    return Summary(
        kendall_tau=kendall_tau(retrieval, final),
        overlap=overlap_at_k(retrieval, final, result.num_results),
        from_outside=sum(c.entered for c in top),
        moved_up=sum((c.movement or 0) > 0 for c in top),
        moved_down=sum((c.movement or 0) < 0 for c in top),
        unchanged=sum(c.movement == 0 for c in top),
        truncated=sum(c.truncated for c in result.candidates),
        top_changed=bool(top) and top[0].id != result.candidates[0].id,
    )


EXPORT_COLUMNS = (
    "final_rank",
    "id",
    "title",
    "retrieval_rank",
    "retrieval_score",
    "rerank_rank",
    "rerank_score",
    "rerank_normalized",
    "fused_rank",
    "fused_score",
    "movement",
    "badge",
    "entered_top",
    "left_top",
    "truncated",
)


def export_rows(result: SearchResult) -> list[dict[str, Any]]:
    """One flat row per candidate in final order: both orders, both scores, movement."""
    rows = []
    for c in result.reranked:
        rows.append(
            {
                "final_rank": c.final_rank,
                "id": c.id,
                "title": c.title,
                "retrieval_rank": c.retrieval_rank,
                "retrieval_score": round(c.retrieval_score, 6),
                "rerank_rank": c.rerank_rank,
                "rerank_score": None if c.rerank_score is None else round(c.rerank_score, 6),
                "rerank_normalized": (
                    None if c.rerank_normalized is None else round(c.rerank_normalized, 6)
                ),
                "fused_rank": c.fused_rank,
                "fused_score": None if c.fused_score is None else round(c.fused_score, 6),
                "movement": c.movement,
                "badge": badge(c),
                "entered_top": c.entered,
                "left_top": c.left,
                "truncated": c.truncated,
            }
        )
    return rows


def retrieval_score_label(result: SearchResult) -> str:
    """Name of the first stage's score: "cosine", "BM25" or "RRF"."""
    return SCORE_LABELS.get(result.retrieval_score_kind, result.retrieval_score_kind)


def export_csv(result: SearchResult) -> str:
    """The export rows as CSV (header first); text cells a spreadsheet would run as a
    formula get a leading apostrophe (:mod:`core.data.csvsafe`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator=LINE_END)
    writer.writeheader()
    writer.writerows(spreadsheet_safe_row(row) for row in export_rows(result))
    return buffer.getvalue()


def export_json(result: SearchResult, manifest: Any = None) -> str:
    """Settings, timings and every candidate (with its record) as JSON; with a
    :class:`core.present.manifest.Manifest`, what it was computed from under "manifest"."""
    data = result.to_dict()
    if manifest is not None:
        data["manifest"] = manifest.to_dict()
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


_MARKDOWN_SPECIALS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
WORD_JOINER = "\u2060"
"""An invisible character that joins words: put inside ``http:``, ``www.`` and ``x@y`` it
keeps them from matching an autolink, and the text still reads the same."""
# Streamlit's markdown (remark-gfm) turns bare URLs and e-mail addresses into links AFTER
# backslash escapes are resolved, so escaping cannot stop it: these places get a joiner.
_AUTOLINKS = re.compile(r"(?i)(?<![a-z])(https?|ftp|mailto|xmpp)(?=:)|\b(www)(?=\.)|(@)")
DISPLAY_CHARS = 300
"""Longest outside value shown whole; longer ones are cut with an ellipsis."""


def shown_value(text: object, limit: int = 60) -> str:
    """A value from outside as a warning quotes it: one line, cut to ``limit`` characters
    (with how long it was), in quotes."""
    flat = _LINE_BREAKS.sub(" ", str(text))
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return repr(flat)


def _join_autolinks(match: re.Match[str]) -> str:
    return match.group(0) + WORD_JOINER


def escape_markdown(text: str) -> str:
    """Escape dataset, file-name, link or API text so Streamlit markdown shows it literally.

    Every ASCII punctuation character gets a backslash (CommonMark renders an escaped
    punctuation character as itself), so no text becomes a link or autolink
    (``[x](u)``, ``<u>``, ``http://...``, ``www.``, e-mail), emphasis, code, LaTeX
    (``$``), a table, a heading, a list, HTML, an entity or a Streamlit directive
    (``:red[...]``, ``:material/...:``). Bare URLs and e-mail addresses, which Streamlit's
    markdown links after escapes are resolved, get an invisible word joiner
    (:data:`WORD_JOINER`) after their scheme, ``www`` or ``@``. Line breaks and other
    control characters become one space, so a message stays one line. Streamlit never
    renders raw HTML from markdown (``unsafe_allow_html`` stays off): the second wall.
    """
    text = _AUTOLINKS.sub(_join_autolinks, _LINE_BREAKS.sub(" ", str(text)))
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIALS else ch for ch in text)


# An absolute or home path of two or more parts, not inside a URL (no ':' or '/' before).
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])~?(?:/[^\s/'\"`,;()\[\]<>]+){2,}/?")


def redact_paths(text: str) -> str:
    """``text`` with every server path cut to its last part (``/srv/app/x/deep.json`` ->
    ``…/deep.json``): errors tell a visitor what failed, never where files live."""
    return _SERVER_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def error_text(exc: BaseException | str) -> str:
    """The one way to show an error on a page: server paths redacted, then cut and
    escaped like any outside text (:func:`outside_text`)."""
    return outside_text(redact_paths(str(exc)))


def outside_text(text: object, limit: int = DISPLAY_CHARS) -> str:
    """The one way to show text that came from a link, a file, a record or a note in
    markdown: cut to ``limit`` characters and escaped (:func:`escape_markdown`), so it can
    never become a link, an image, a heading or HTML."""
    flat = str(text)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return escape_markdown(flat)


def unjudged_entered(result: SearchResult, ratings: Mapping[str, int | None]) -> list[Candidate]:
    """The final top-N documents that the second stage brought in from outside the
    retrieval top-N and that have no rating yet, in final order."""
    rated = {doc_id for doc_id, r in ratings.items() if r is not None}
    return [c for c in result.top_final if c.entered and c.id not in rated]


def judged_metrics(result: SearchResult, ratings: Mapping[str, int]) -> dict[str, float] | None:
    """nDCG and MRR at ``num_results`` of both orders, from graded ratings (any
    non-negative integer) by id; with the share of each top-N that is rated
    (``*_judged``) and the condensed-list nDCG (unjudged removed first, ``*_ndcg_cond``).

    The ideal ranking uses every rated document, as trec_eval does. None when nothing
    is rated relevant.
    """
    from core.quality.metrics import condensed, judged_at_k, mrr_at_k, ndcg_at_k

    qrels = {doc_id: int(r) for doc_id, r in ratings.items() if r is not None}
    if not any(r > 0 for r in qrels.values()):
        return None
    k = result.num_results
    base = [c.id for c in result.candidates]
    final = [c.id for c in result.reranked]
    return {
        "base_ndcg": ndcg_at_k(base, qrels, k),
        "reranked_ndcg": ndcg_at_k(final, qrels, k),
        "base_mrr": mrr_at_k(base, qrels, k),
        "reranked_mrr": mrr_at_k(final, qrels, k),
        "base_judged": judged_at_k(base, qrels, k),
        "reranked_judged": judged_at_k(final, qrels, k),
        "base_ndcg_cond": ndcg_at_k(condensed(base, qrels), qrels, k),
        "reranked_ndcg_cond": ndcg_at_k(condensed(final, qrels), qrels, k),
    }


def unjudged_rows(report: EvaluationReport) -> list[dict[str, Any]]:
    """One row per unjudged document a second stage brought into a query's top 10:
    query id and text, doc id, title, and the query's judged@10 before and after."""
    rows = []
    for q in report.unjudged_entered():
        after = q.reranked["judged@10"] if q.reranked is not None else None
        for doc_id, title in q.unjudged_entered:
            rows.append(
                {
                    "qid": q.qid,
                    "query": q.query,
                    "doc id": doc_id,
                    "title": title,
                    "judged@10 before": q.base["judged@10"],
                    "judged@10 after": after,
                }
            )
    return rows


def unjudged_summary(report: EvaluationReport) -> dict[str, dict[str, float]]:
    """Per run ("retrieval only", and "after second stage" if run): judged@10, and the
    standard and condensed nDCG@10 / MRR@10 side by side."""
    keys = ("judged@10", "ndcg@10", "ndcg_cond@10", "mrr@10", "mrr_cond@10")
    runs = {"retrieval only": report.base}
    if report.reranked is not None:
        runs["after second stage"] = report.reranked
    return {name: {k: means[k] for k in keys} for name, means in runs.items()}


# How manifests written before nprobe was chosen on runs of words name their queries.
_TITLE_QUERIES = "sample records' titles or first 12 words"


def approximate_note(collection) -> str:
    """One line saying that dense search on ``collection`` is approximate, with the
    recall@100 measured against exact search when it was built."""
    index = collection.manifest.get("index") or {}
    recall = index.get("recall_at_100")
    measured = (
        f"recall@100 {recall:.3f} against exact search, measured "
        + (f"when re-tuned ({index['retuned'][:10]})" if index.get("retuned") else "at build time")
        + f" on {index.get('recall_queries', 'sample queries')}"
        if recall is not None
        else "recall not measured"
    )
    if _TITLE_QUERIES in str(index.get("recall_queries", "")):
        measured += (
            " (built before nprobe was chosen on runs of words: titles as queries overstate "
            "recall, 0.997 where real queries got 0.875 on a 200k collection; choose it "
            f"again in seconds with `python -m core collection retune "
            f"{collection.collection_name}`)"
        )
    return (
        f"Dense search on collection '{collection.collection_name}' "
        f"({len(collection):,} records) is approximate: faiss {index.get('factory', 'IVF-SQ8')}"
        f", nprobe {index.get('nprobe')}, candidates rescored with exact cosine; {measured}."
    )
