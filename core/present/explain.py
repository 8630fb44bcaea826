"""Explanations shown: a diverging heat map of the text, top words, first-stage reasons.

Colours are colour-blind safe (blue raised the score, orange lowered it) and never the
only signal: every strongly coloured word carries its sign (``+``/``-``) in text, and
its effect in logits is in its tooltip and in the top-word lists. The HTML uses inline
styles only, no script; every piece of text from the data is escaped with
:func:`html.escape`, so it is safe in ``st.html``, the HTML report and a printout.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.quality.explain import Contrast, Explanation, Piece
from core.quality.explain_first_stage import FirstStageExplanation, top_terms

BLUE = (33, 102, 172)  # raised the score
ORANGE = (230, 97, 1)  # lowered it
SIGN_SHARE = 0.25  # words at least this share of the largest |effect| carry their sign
MINUS = "\u2212"


def signed(value: float | None, digits: int = 2) -> str:
    """``+1.23`` / ``−0.40`` (a real minus sign); ``n/a`` for None."""
    if value is None:
        return "n/a"
    text = f"{abs(value):.{digits}f}"
    return f"+{text}" if value >= 0 else f"{MINUS}{text}"


def _colour(effect: float, scale: float) -> str:
    """Blue (raised) or orange (lowered), stronger with ``|effect| / scale``; effects
    under 5% of the largest are left uncoloured (noise, not evidence)."""
    strength = min(1.0, abs(effect) / scale) if scale > 0 else 0.0
    if strength < 0.05:
        return "transparent"
    r, g, b = BLUE if effect >= 0 else ORANGE
    return f"rgba({r},{g},{b},{0.1 + 0.6 * strength:.2f})"


def _sentence_effects(expl: Explanation) -> dict[int, float]:
    """Per word start: its sentence's effect shared over its words (for words not
    measured one by one in long texts)."""
    out: dict[int, float] = {}
    for s in expl.sentences:
        inside = [w for w in expl.doc_words if s.start <= w.start < s.end]
        for w in inside:
            out[w.start] = (s.effect or 0.0) / max(1, len(inside))
    return out


def _word_span(w: Piece, effect: float | None, scale: float, estimated: bool) -> str:
    text = html.escape(w.text, quote=True)
    if not w.read:
        return f'<span style="color:#777;text-decoration:line-through dotted">{text}</span>'
    if effect is None:
        return text
    title = f"{signed(effect)} logits" + (" (its sentence's share)" if estimated else "")
    style = f"background:{_colour(effect, scale)};border-radius:3px;padding:0 1px"
    if estimated:
        style += ";border-bottom:1px dashed #999"
    mark = ""
    if not estimated and scale > 0 and abs(effect) >= SIGN_SHARE * scale:
        mark = f'<sup style="font-size:0.7em">{"+" if effect >= 0 else MINUS}</sup>'
    return f'<span title="{html.escape(title, quote=True)}" style="{style}">{text}{mark}</span>'


def heatmap_html(expl: Explanation) -> str:
    """The text with each word coloured by its effect (escaped HTML, inline styles).

    Words the model never read are struck through (grey), with a note; words measured
    only through their sentence (long texts) are shaded lightly, dashed underline.
    """
    shared = _sentence_effects(expl)
    measured = [abs(w.effect) for w in expl.doc_words if w.effect is not None]
    scale = max(measured + [abs(v) for v in shared.values()] + [0.0])
    out, pos = [], 0
    for w in expl.doc_words:
        out.append(html.escape(expl.text[pos : w.start], quote=True))
        estimated = w.effect is None and w.start in shared
        effect = w.effect if w.effect is not None else shared.get(w.start)
        out.append(_word_span(w, effect, scale, estimated))
        pos = w.end
    out.append(html.escape(expl.text[pos:], quote=True))
    unread = sum(1 for w in expl.doc_words if not w.read)
    note = ""
    if unread:
        where = "outside the passage that decided" if expl.passage else "past the model's length"
        note = (
            f'<div style="font-size:0.85em;color:#555">{unread} words {where} were never read '
            "by the model (struck through).</div>"
        )
    legend = (
        '<div style="font-size:0.85em;color:#333;margin-bottom:4px">'
        f'<span style="background:{_colour(1, 1)};padding:0 4px">+ raised</span> '
        f'<span style="background:{_colour(-1, 1)};padding:0 4px">{MINUS} lowered</span> '
        f"the score ({html.escape(expl.model)}, {html.escape(expl.level)}; "
        f"base {signed(expl.base_score)} logits)</div>"
    )
    body = (
        '<div style="white-space:pre-wrap;line-height:1.7;font-family:sans-serif">'
        + "".join(out)
        + "</div>"
    )
    return f"<div>{legend}{body}{note}</div>"


def top_words(expl: Explanation, k: int = 5) -> dict[str, list[tuple[str, float]]]:
    """``{"helped": [(word, effect)], "hurt": [...], "query": [...]}``, strongest first."""
    return {
        "helped": [(w.text, float(w.effect)) for w in expl.helped(k)],
        "hurt": [(w.text, float(w.effect)) for w in expl.hurt(k)],
        "query": [(w.text, float(w.effect or 0.0)) for w in expl.query_words],
    }


def explanation_text(expl: Explanation, k: int = 5, figure: dict[str, Any] | None = None) -> str:
    """A plain-text summary (the CLI's output)."""
    tops = top_words(expl, k)
    lines = [
        f"score {signed(expl.base_score)} logits by {expl.model} ({expl.method}, {expl.level};"
        f" {expl.pairs_scored} pairs, {expl.seconds:.2f} s"
        + (", from cache" if expl.from_cache else "")
        + ")",
    ]
    if expl.unread:
        s, e = expl.read_span
        what = "the passage that decided" if expl.passage else "what fits in its max length"
        lines.append(f"the model read characters {s}-{e} of {len(expl.text)} ({what})")
    lines.append("helped: " + (", ".join(f"{w} {signed(v)}" for w, v in tops["helped"]) or "none"))
    lines.append("hurt:   " + (", ".join(f"{w} {signed(v)}" for w, v in tops["hurt"]) or "none"))
    lines.append("query words: " + ", ".join(f"{w} {signed(v)}" for w, v in tops["query"]))
    if expl.sentences:
        best = max(expl.sentences, key=lambda p: p.effect or 0.0)
        lines.append(f"top sentence ({signed(best.effect)}): {best.text[:160]}")
    if figure:
        lines.append(faithfulness_line(figure))
    return "\n".join(lines)


def faithfulness_line(figure: dict[str, Any]) -> str:
    """One line: this method's comprehensiveness against random on this data."""
    verdict = "passes" if figure["passes"] else "does NOT pass"
    return (
        f"faithfulness on this data: comprehensiveness AOPC {figure['comprehensiveness']:.2f}"
        f" vs random {figure['random']:.2f} ({verdict} the 2x bar; {figure['pairs']} pairs)"
    )


def contrast_text(c: Contrast, x_name: str = "", y_name: str = "") -> str:
    """Why X is above Y, in plain text (``x_name``/``y_name``: their titles, named first)."""
    xs = ", ".join(f"{w} {signed(v)}" for w, v in c.x_only[:8] if v is not None) or "none"
    verdict = "falls below" if c.flips else "stays above"
    names = [f"X: {x_name} · Y: {y_name}"] if x_name or y_name else []
    return "\n".join(
        [
            *names,
            f"X {signed(c.x.base_score)} vs Y {signed(c.y.base_score)} logits",
            f"X has, Y lacks: {xs}",
            f"swap test: X without {', '.join(c.removed) or 'nothing'} scores "
            f"{signed(c.x_without_evidence)}: it {verdict} Y",
        ]
    )


def first_stage_text(fs: FirstStageExplanation, k: int = 6) -> str:
    """The first stage's parts in plain text, with the recomputed and shown scores."""
    if not fs.exact:
        return f"{fs.kind}: {fs.note}"
    head = f"{fs.kind}: parts sum to {fs.total:.6f}"
    if fs.shown is not None:
        head += f" (shown {fs.shown:.6f}, difference {abs(fs.total - fs.shown):.1e})"
    parts = []
    for p in fs.parts[:k]:
        extra = ""
        if "idf" in p.detail:
            d = p.detail
            extra = f" (idf {d['idf']:.3f} x tf part {d['tf_part']:.3f}, tf {d['tf']})"
        parts.append(f"{p.label} {signed(p.value, 4)}{extra}")
    return "\n".join([head, "  " + "; ".join(parts), f"  {fs.note}"])


def reasons_line(fs: FirstStageExplanation | None, expl: Explanation | None) -> str:
    """``retrieval matched on heist, big; the reranker weighed heist, Hollywood``."""
    bits = []
    if fs is not None and fs.exact:
        terms = top_terms(fs)
        if terms:
            bits.append("retrieval matched on " + ", ".join(terms))
    if expl is not None:
        words = [w.text for w in expl.helped(3)]
        if words:
            bits.append("the reranker weighed " + ", ".join(words))
    return "; ".join(bits)


def reasons_html(fs: FirstStageExplanation | None, expl: Explanation | None) -> str:
    """:func:`reasons_line` with the terms in italics (escaped HTML)."""
    bits = []
    if fs is not None and fs.exact and top_terms(fs):
        bits.append(
            "retrieval matched on " + ", ".join(f"<i>{html.escape(t)}</i>" for t in top_terms(fs))
        )
    if expl is not None and expl.helped(3):
        bits.append(
            "the reranker weighed "
            + ", ".join(f"<i>{html.escape(w.text)}</i>" for w in expl.helped(3))
        )
    return "; ".join(bits)


# ---------------------------------------------------------------- reports and exports


@dataclass(frozen=True)
class Shown:
    """An explanation as the user saw it: a label (``"A · local cross-encoder"``), the
    document's id and title, the explanation, and its method's faithfulness figure on
    that data (:func:`core.quality.faithfulness.faithfulness_figure`, or None)."""

    label: str
    doc_id: str
    title: str
    explanation: Explanation
    figure: dict[str, Any] | None = None


def _word_rows(items: list[tuple[str, float]]) -> str:
    if not items:
        return "none"
    return ", ".join(f"{html.escape(w, quote=True)} ({signed(v)})" for w, v in items)


def explanation_block(item: Shown) -> str:
    """One explanation for the HTML report: heading, heat map, top words, query words,
    read span and the faithfulness line. Escaped HTML, inline styles, no script."""
    expl = item.explanation
    tops = top_words(expl)
    faith = (
        faithfulness_line(item.figure)
        if item.figure
        else "Faithfulness not measured on this data (python -m core bench-explain)."
    )
    rows = [
        f"<b>Helped</b> (logits): {_word_rows(tops['helped'])}",
        f"<b>Hurt</b> (logits): {_word_rows(tops['hurt'])}",
        f"<b>Query words</b>: {_word_rows(tops['query'])}",
    ]
    if expl.unread:
        s, e = expl.read_span
        what = "the passage that decided" if expl.passage else "what fits in its max length"
        rows.append(f"The model read characters {s}–{e} of {len(expl.text)} ({what}).")
    rows.append(html.escape(faith))
    cost = f"{expl.method}, {expl.pairs_scored} pairs scored by the model"
    return (
        '<div class="explanation" style="break-inside:avoid;page-break-inside:avoid;'
        'margin:.6rem 0 1.2rem">'
        f"<h3>{html.escape(item.label)}: {html.escape(item.title)} "
        f'<span style="color:#555;font-weight:normal">(id {html.escape(item.doc_id)}; '
        f"{html.escape(cost)})</span></h3>"
        + heatmap_html(expl)
        + "".join(f'<p style="margin:.3rem 0">{r}</p>' for r in rows)
        + "</div>"
    )


def explanations_section(items: Sequence[Shown], heading: str = "Why these scores?") -> str:
    """A report section of explanations (empty string when there are none)."""
    if not items:
        return ""
    intro = (
        '<p class="caption">Leave-one-out occlusion on the model that produced the score: '
        "each word removed in turn and the pair scored again. Blue (+) raised the score, "
        f"orange ({MINUS}) lowered it; effects in logits. Effects are not additive.</p>"
    )
    return (
        f"<section><h2>{html.escape(heading)}</h2>{intro}"
        + "".join(explanation_block(i) for i in items)
        + "</section>"
    )


def explanation_record(item: Shown) -> dict[str, Any]:
    """One explanation for a JSON export: which result, the method, every piece with
    its effect (None: not measured; ``read`` False: never read), the top words, the
    query words and the faithfulness figure."""
    expl = item.explanation

    def pieces(ps: Sequence[Piece]) -> list[dict[str, Any]]:
        return [
            {"text": p.text, "start": p.start, "end": p.end, "effect": p.effect, "read": p.read}
            for p in ps
        ]

    return {
        "label": item.label,
        "doc_id": item.doc_id,
        "title": item.title,
        "query": expl.query,
        "model": expl.model,
        "method": expl.method,
        "level": expl.level,
        "units": "logits",
        "base_score": expl.base_score,
        "read_span": list(expl.read_span),
        "truncated": expl.truncated,
        "pairs_scored": expl.pairs_scored,
        "doc_words": pieces(expl.doc_words),
        "sentences": pieces(expl.sentences),
        "query_words": pieces(expl.query_words),
        "top": top_words(expl),
        "faithfulness": item.figure,
    }


def json_with_explanations(text: str, items: Sequence[Shown]) -> str:
    """A JSON export (an object) with ``"explanations"`` added: those the user opened."""
    if not items:
        return text
    data = json.loads(text)
    data["explanations"] = [explanation_record(i) for i in items]
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
