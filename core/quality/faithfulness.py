"""How far to trust an explanation: ERASER's comprehensiveness and sufficiency.

DeYoung et al. 2020 (ERASER): rank the document's words by an explanation, then

* **comprehensiveness** at k: the score drop when the top k% words are removed
  (``base - score(text without them)``); high means the words ranked first matter;
* **sufficiency** at k: the score drop when only the top k% words are kept
  (``base - score(only them)``); low means they suffice on their own;

each averaged over k in :data:`KS` (AOPC). Scores are the served reranker's own, each
pair scored as a normal rerank would. Two baselines rank the same words: a random
order (seeded), and attention weights (the [CLS] row of the last layer, averaged over
heads, summed over a word's tokens) of the fp32 rebuild of the same weights
(:mod:`core.models.torch_cross_encoder`). :func:`method_passes` is the rule the app
applies: a method is shown only when its comprehensiveness AOPC is at least twice the
random baseline's on that data. The bench stores its table as JSON in the cache folder
(:func:`save_table`), so the app can show the figure beside an explanation.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.models.base import Reranker
from core.models.paths import atomic_write, cache_dir
from core.quality.explain import Explanation, keep_spans, remove_spans, score_texts

KS = (0.05, 0.10, 0.20, 0.50)
PASS_FACTOR = 2.0
TABLE_FILE = "explain_faithfulness.json"


@dataclass(frozen=True)
class Erasure:
    """Comprehensiveness and sufficiency of one ranking of one explained pair."""

    comprehensiveness: tuple[float, ...]
    sufficiency: tuple[float, ...]

    @property
    def comprehensiveness_aopc(self) -> float:
        """Mean comprehensiveness over :data:`KS`."""
        return float(np.mean(self.comprehensiveness))

    @property
    def sufficiency_aopc(self) -> float:
        """Mean sufficiency over :data:`KS`."""
        return float(np.mean(self.sufficiency))


def pair_text(expl: Explanation) -> tuple[str, int]:
    """The text of the pair that was scored, and its offset in ``expl.text``."""
    if expl.passage:
        return expl.text[expl.read_span[0] : expl.read_span[1]], expl.read_span[0]
    return expl.text, 0


def read_spans(expl: Explanation) -> list[tuple[int, int]]:
    """Spans (in the pair text) of every word the model read."""
    _, p0 = pair_text(expl)
    return [(w.start - p0, w.end - p0) for w in expl.doc_words if w.read]


def occlusion_order(expl: Explanation, sentence_major: bool = True) -> list[tuple[int, int]]:
    """The read words, highest effect first.

    A long text's explanation is hierarchical (sentences, then the words of the top
    ones): ``sentence_major`` ranks words by their sentence's effect first, then by their
    own effect inside it (the sentence is the primary evidence; words refine it).
    Otherwise words measured one by one come by their effect, the others by their
    sentence's effect shared over its words. Both are the same for a text explained
    word by word."""
    _, p0 = pair_text(expl)
    sentence_of: dict[int, float] = {}
    share: dict[int, float] = {}
    for s in expl.sentences:
        inside = [w for w in expl.doc_words if s.start <= w.start < s.end and w.read]
        for w in inside:
            sentence_of[w.start] = s.effect or 0.0
            share[w.start] = (s.effect or 0.0) / max(1, len(inside))
    keyed = []
    for w in expl.doc_words:
        if not w.read:
            continue
        own = w.effect if w.effect is not None else share.get(w.start, 0.0)
        major = sentence_of.get(w.start, 0.0) if sentence_major else 0.0
        keyed.append((-major, -own, w.start, (w.start - p0, w.end - p0)))
    return [span for *_, span in sorted(keyed)]


def random_order(expl: Explanation, seed: int = 0) -> list[tuple[int, int]]:
    """The read words in a random (seeded) order: the baseline every method must beat."""
    spans = read_spans(expl)
    rng = np.random.default_rng(seed)
    return [spans[i] for i in rng.permutation(len(spans))]


def erase(
    reranker: Reranker, expl: Explanation, order: Sequence[tuple[int, int]], ks=KS
) -> Erasure:
    """Comprehensiveness and sufficiency of ``order`` (spans in the pair text), the
    perturbed pairs scored in one call of the reranker."""
    text, _ = pair_text(expl)
    n = len(order)
    if n == 0:
        return Erasure(tuple(0.0 for _ in ks), tuple(0.0 for _ in ks))
    tops = [list(order[: max(1, math.ceil(k * n))]) for k in ks]
    texts = [remove_spans(text, top) for top in tops] + [keep_spans(text, top) for top in tops]
    scores = score_texts(reranker, expl.query, texts)
    base = expl.base_score
    comp = tuple(float(base - s) for s in scores[: len(ks)])
    suff = tuple(float(base - s) for s in scores[len(ks) :])
    return Erasure(comp, suff)


# ---------------------------------------------------------------- attention baseline

_ATTENTION_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _attention_model():
    """The fp32 rebuild of the packaged cross-encoder, with eager attention (so the
    attention weights can be returned), and its fast tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from core.models.hub import quiet_transformers
    from core.models.torch_cross_encoder import build_dequantized_cross_encoder

    quiet_transformers()
    folder = build_dequantized_cross_encoder()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), attn_implementation="eager", local_files_only=True
    )
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def attention_order(expl: Explanation, max_length: int = 512) -> list[tuple[int, int]]:
    """The read words ranked by the last layer's [CLS] attention (mean over heads,
    summed over a word's tokens) in the fp32 rebuild of the same weights."""
    import torch

    text, _ = pair_text(expl)
    model, tokenizer = _attention_model()
    enc = tokenizer(
        expl.query,
        text,
        truncation="longest_first",
        max_length=max_length,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping")[0].tolist()
    seq = enc.sequence_ids(0)
    with _ATTENTION_LOCK, torch.no_grad():
        out = model(**enc, output_attentions=True)
    weights = out.attentions[-1][0].mean(dim=0)[0].numpy()  # [CLS] row, mean over heads
    spans = read_spans(expl)
    starts = [s for s, _ in spans]
    import bisect

    mass = dict.fromkeys(spans, 0.0)
    for i, (s, e) in enumerate(offsets):
        if seq[i] != 1 or e <= s:
            continue
        j = bisect.bisect_right(starts, s) - 1
        if j >= 0:
            mass[spans[j]] += float(weights[i])
    return sorted(spans, key=lambda sp: (-mass[sp], sp[0]))


def attention_available() -> str | None:
    """None when the attention baseline can run, else why not (one line)."""
    try:
        _attention_model()
    except Exception as exc:  # any failure means: no baseline; say why
        return f"attention baseline unavailable: {type(exc).__name__}: {exc}"[:200]
    return None


# ---------------------------------------------------------------- the rule and the table


def method_passes(table: dict[str, Any] | None, dataset: str, method: str = "occlusion") -> bool:
    """Whether ``method``'s comprehensiveness AOPC on ``dataset`` is at least
    :data:`PASS_FACTOR` times the random baseline's, in a bench ``table``
    (:func:`load_table`). False when the table lacks either figure."""
    figure = faithfulness_figure(table, dataset, method)
    return bool(figure and figure["passes"])


def faithfulness_figure(
    table: dict[str, Any] | None, dataset: str, method: str = "occlusion"
) -> dict[str, Any] | None:
    """``{"comprehensiveness", "random", "ratio", "passes", "pairs"}`` of ``method`` on
    ``dataset`` from a bench table, or None when it was not measured."""
    rows = ((table or {}).get("datasets") or {}).get(dataset) or {}
    mine, rand = rows.get(method), rows.get("random")
    if not mine or not rand:
        return None
    ours, base = float(mine["comprehensiveness_aopc"]), float(rand["comprehensiveness_aopc"])
    ratio = ours / base if base > 0 else math.inf
    return {
        "comprehensiveness": ours,
        "random": base,
        "ratio": ratio,
        "passes": ours > 0 and ours >= PASS_FACTOR * base,
        "pairs": int(mine.get("pairs", 0)),
    }


def save_table(table: dict[str, Any]) -> None:
    """Keep the bench's table at ``<cache dir>/explain_faithfulness.json``."""
    path = cache_dir() / TABLE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(table, indent=2).encode("utf-8"))


def load_table() -> dict[str, Any] | None:
    """The last stored bench table, or None."""
    try:
        return json.loads((cache_dir() / TABLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
