"""Integrated Gradients on the fp32 rebuild of the packaged cross-encoder (issue #32).

A second explanation method beside occlusion. Integrated Gradients (Sundararajan et al.
2017) attributes ``f(x) - f(x')`` to the input along the straight path from a baseline
``x'`` to the input ``x``: ``(x - x') * integral over a in [0, 1] of df/dx(x' + a(x - x'))``.
As Captum's ``LayerIntegratedGradients`` on the embeddings layer does, the path runs
over the output of BERT's embedding layer (word + position + type embeddings, layer
norm), the baseline being the same pair with every query and document token replaced by
``[PAD]`` (``[CLS]``/``[SEP]`` kept), and the integral is taken by Gauss-Legendre
quadrature (:data:`STEPS` points, Captum's default rule). A token's attribution is the
sum over the hidden dimensions; a word's, the sum of its tokens'. By completeness the
attributions sum to ``f(x) - f(x')`` up to the quadrature error (reported).

The gradients need a differentiable model, so this runs on the fp32 rebuild of the
packaged INT8 weights (:mod:`core.models.torch_cross_encoder`), not on the served INT8
graph: its logits differ by a few tenths, and the explanation says which model it
explains. Captum itself is not a dependency: it pins ``numpy<2`` while this project
runs numpy 2; the computation is the few lines below (checked against Captum 0.8.0,
see docs/explanations.md). Whether it is shown is decided by the same faithfulness bar
as occlusion, measured on the served model (``python -m core bench-explain``).
"""

from __future__ import annotations

import bisect
import time
from typing import Any

import numpy as np

from core.models.base import PACKAGED_CROSS_ENCODER
from core.quality.explain import (
    ExplainError,
    Explanation,
    OtherMethod,
    Piece,
    register_method,
    words_of,
)

STEPS = 32
BATCH = 8
IG_MODEL_KEY = "fp32-rebuild-ig"


def _model():
    from core.quality.faithfulness import _ATTENTION_LOCK, _attention_model

    model, tokenizer = _attention_model()
    return model, tokenizer, _ATTENTION_LOCK


def token_attributions(
    query: str, text: str, *, steps: int = STEPS, max_length: int = 512
) -> dict[str, Any]:
    """IG attributions of every token of ``(query, text)``: ``offsets``, ``sequence``
    (0 query, 1 text, None special), ``attributions`` (logits), ``score`` (f(x)),
    ``baseline`` (f(x')) and ``gap`` (sum of attributions minus ``score - baseline``)."""
    import torch

    model, tokenizer, lock = _model()
    enc = tokenizer(
        query,
        text,
        truncation="longest_first",
        max_length=max_length,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping")[0].tolist()
    seq = enc.sequence_ids(0)
    ids, types, mask = enc["input_ids"], enc["token_type_ids"], enc["attention_mask"]
    base_ids = ids.clone()
    inside = [i for i, s in enumerate(seq) if s is not None]
    base_ids[0, inside] = tokenizer.pad_token_id
    layer = model.bert.embeddings
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2
    with lock:
        with torch.no_grad():
            x = layer(input_ids=ids, token_type_ids=types)
            x0 = layer(input_ids=base_ids, token_type_ids=types)
            score = float(model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits)
            baseline = float(
                model(input_ids=base_ids, attention_mask=mask, token_type_ids=types).logits
            )
        total = torch.zeros_like(x[0])
        for start in range(0, steps, BATCH):
            a = torch.tensor(alphas[start : start + BATCH], dtype=x.dtype).view(-1, 1, 1)
            w = torch.tensor(weights[start : start + BATCH], dtype=x.dtype).view(-1, 1, 1)
            path = (x0 + a * (x - x0)).detach().requires_grad_(True)
            handle = layer.register_forward_hook(lambda _m, _i, _o, p=path: p)
            try:
                n = path.shape[0]
                out = model(
                    input_ids=ids.expand(n, -1),
                    attention_mask=mask.expand(n, -1),
                    token_type_ids=types.expand(n, -1),
                ).logits[:, 0]
            finally:
                handle.remove()
            (grad,) = torch.autograd.grad(out.sum(), path)
            total += (grad * w).sum(dim=0)
        attributions = ((x[0] - x0[0]) * total).sum(dim=-1).detach().numpy().astype(np.float64)
    return {
        "offsets": offsets,
        "sequence": seq,
        "attributions": attributions,
        "score": score,
        "baseline": baseline,
        "gap": float(attributions.sum() - (score - baseline)),
    }


def _word_sums(
    spans: list[tuple[int, int]], parts: dict[str, Any], which: int
) -> dict[tuple[int, int], float]:
    """Each word's attribution: the sum over its tokens (tokens of sequence ``which``)."""
    starts = [s for s, _ in spans]
    out: dict[tuple[int, int], float] = {}
    for (s, e), sq, v in zip(
        parts["offsets"], parts["sequence"], parts["attributions"], strict=True
    ):
        if sq != which or e <= s:
            continue
        j = bisect.bisect_right(starts, s) - 1
        if j >= 0 and s < spans[j][1]:
            out[spans[j]] = out.get(spans[j], 0.0) + float(v)
    return out


def explain_ig(
    query: str, text: str, *, passage: tuple[int, int] | None = None, steps: int = STEPS
) -> Explanation:
    """An :class:`Explanation` by Integrated Gradients (``method="ig"``) of the fp32
    rebuild's score of ``(query, text)`` (or of the ``passage`` span that decided)."""
    wall, cpu = time.perf_counter(), time.process_time()
    p0, p1 = passage if passage is not None else (0, len(text))
    pair_text = text[p0:p1]
    parts = token_attributions(query, pair_text, steps=steps)
    doc_ends = [
        e for (_, e), sq in zip(parts["offsets"], parts["sequence"], strict=True) if sq == 1
    ]
    read_end = max(doc_ends) if doc_ends else 0
    if not doc_ends:
        raise ExplainError("the query fills the model's length: no document text was read")
    spans = words_of(pair_text)
    effects = _word_sums(spans, parts, 1)
    doc_words = []
    for s, e in spans:
        read = s < read_end
        doc_words.append(
            Piece(pair_text[s:e], s + p0, e + p0, effects.get((s, e)) if read else None, read)
        )
    if passage is not None:  # the words outside the passage: never read
        before = [Piece(text[s:e], s, e, None, False) for s, e in words_of(text, 0, p0)]
        after = [Piece(text[s:e], s, e, None, False) for s, e in words_of(text, p1)]
        doc_words = before + doc_words + after
    q_spans = words_of(query)
    q_effects = _word_sums(q_spans, parts, 0)
    query_words = tuple(Piece(query[s:e], s, e, q_effects.get((s, e), 0.0)) for s, e in q_spans)
    return Explanation(
        query=query,
        text=text,
        base_score=parts["score"],
        doc_words=tuple(doc_words),
        query_words=query_words,
        method="ig",
        model=f"{PACKAGED_CROSS_ENCODER} (fp32 rebuild)",
        model_key=IG_MODEL_KEY,
        truncated=read_end < len(pair_text) or passage is not None,
        read_span=(p0, p0 + read_end),
        passage=passage is not None,
        pairs_scored=steps + 2,
        seconds=time.perf_counter() - wall,
        cpu_seconds=time.process_time() - cpu,
    )


def ig_order(expl: Explanation, steps: int = STEPS) -> list[tuple[int, int]]:
    """The read words of an explanation (spans in its pair text, as
    :func:`core.quality.faithfulness.read_spans`) ranked by IG attribution, highest
    first: the bench erases them on the served model like any other ranking."""
    from core.quality.faithfulness import pair_text, read_spans

    text, _ = pair_text(expl)
    spans = read_spans(expl)
    parts = token_attributions(expl.query, text, steps=steps)
    effects = _word_sums(spans, parts, 1)
    return sorted(spans, key=lambda sp: (-effects.get(sp, 0.0), sp[0]))


register_method(
    "ig",
    OtherMethod(PACKAGED_CROSS_ENCODER, IG_MODEL_KEY, lambda q, t, p: explain_ig(q, t, passage=p)),
)
