"""Self-contained HTML reports: what stays after the meeting.

One file, no scripts, no fonts, no images or styles fetched from anywhere: the charts
are inline SVG drawn here, the styles are one inline ``<style>`` with print rules, so it
opens offline in any browser and prints cleanly (each section avoids page breaks
inside; tables repeat their header). Every text that comes from a record, a query, a
note or a setting goes through :func:`html.escape` (in SVG too); nothing from a record is
ever inserted raw.

Builders: :func:`search_report` (the current view: first stage vs second stage),
:func:`head_to_head_report`, :func:`pair_report_html` (A vs B on labelled data) and
:func:`walkthrough_report` (every step, and the blind test's tally if one was run).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.present.explain import Shown, explanations_section
from core.present.room import (
    A_COLOR,
    B_COLOR,
    DOWN,
    DOWN_COLOR,
    SAME_COLOR,
    UP,
    UP_COLOR,
    candidates_phrase,
    step_verdict,
)
from core.present.views import badge, retrieval_score_label
from core.quality.blind import Vote, overall_tally, step_tallies, strengths, strengths_rows
from core.quality.evaluation_pair import PairReport
from core.quality.evaluation_report import PRIMARY_METRIC
from core.quality.headtohead import HeadToHead
from core.search.pipeline import SearchResult
from core.search.retrievers import RETRIEVER_LABELS

COLORS = {"up": UP_COLOR, "down": DOWN_COLOR, "same": SAME_COLOR}
MARKS = {"up": UP, "down": DOWN, "same": ""}
MAX_BARS = 60
CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1d1d1f; margin: 2rem auto; max-width: 1100px; padding: 0 1.2rem; }
h1 { font-size: 1.7rem; margin: 0 0 .2rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .4rem; border-bottom: 2px solid #ddd; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .3rem; }
.sub { color: #555; margin: 0 0 1rem; }
section { break-inside: avoid-page; page-break-inside: avoid; }
section.step { break-before: page; page-break-before: always; }
section.step:first-of-type { break-before: auto; page-break-before: auto; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 6px; text-align: left;
  vertical-align: top; }
th { background: #f4f4f6; }
thead { display: table-header-group; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 1.2rem; }
.kv td:first-child { color: #555; width: 30%; }
.verdict { padding: .6rem .8rem; border-radius: 6px; margin: .6rem 0; font-weight: 600; }
.v-good { background: #e8f1f8; border-left: 5px solid #0072B2; }
.v-bad { background: #fbeee6; border-left: 5px solid #D55E00; }
.v-none { background: #eef3fb; border-left: 5px solid #4a78c2; }
.note { background: #fff8e1; border-left: 5px solid #f0b400; padding: .5rem .8rem;
  white-space: pre-wrap; }
.figure { margin: .6rem 0 1rem; }
.figure svg { max-width: 100%; height: auto; }
.caption { color: #555; font-size: 12.5px; }
footer { color: #777; font-size: 12px; margin-top: 2.5rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2 { margin-top: 1.2rem; }
  .cols { grid-template-columns: 1fr 1fr; }
  a { color: inherit; text-decoration: none; }
}
"""


def e(value: object) -> str:
    """HTML-escape anything (quotes too); None becomes an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _short(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- SVG charts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlopeItem:
    """One line of a slope chart: a label and its rank on the left and on the right."""

    label: str
    left: int
    right: int
    outside: bool = False


def svg_slope(
    items: Sequence[SlopeItem], left_title: str, right_title: str, n: int, width: int = 860
) -> str:
    """A slope (bump) chart from left rank to right rank, one line per item, coloured by
    direction (blue ▲: higher on the right, vermillion ▼: lower); dashed lines for items
    outside either top-N, with a dotted rule under rank ``n``."""
    if not items:
        return '<p class="caption">(nothing to draw)</p>'
    max_rank = max(max(i.left, i.right) for i in items)
    row, top = 22, 40
    height = top + row * max_rank + 20
    x1, x2 = 300, width - 300

    def y(rank: int) -> float:
        return top + row * (rank - 0.5)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="rank movement" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f'<text x="{x1}" y="20" text-anchor="middle" font-weight="bold">{e(left_title)}</text>',
        f'<text x="{x2}" y="20" text-anchor="middle" font-weight="bold">{e(right_title)}</text>',
    ]
    if n < max_rank:
        cut = top + row * n
        parts.append(
            f'<line x1="{x1 - 280}" x2="{x2 + 280}" y1="{cut}" y2="{cut}" stroke="#555" '
            'stroke-dasharray="2 3"/>'
        )
    for item in items:
        direction = "up" if item.right < item.left else "down" if item.right > item.left else "same"
        color, mark = COLORS[direction], MARKS[direction]
        dash = ' stroke-dasharray="5 3"' if item.outside else ""
        ya, yb = y(item.left), y(item.right)
        label = e(_short(item.label))
        parts.append(
            f'<g class="item"><title>{e(item.label)}: #{item.left} → #{item.right}</title>'
            f'<line x1="{x1}" y1="{ya:.1f}" x2="{x2}" y2="{yb:.1f}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
            f'<circle cx="{x1}" cy="{ya:.1f}" r="4" fill="{color}"/>'
            f'<circle cx="{x2}" cy="{yb:.1f}" r="4" fill="{color}"/>'
            f'<text x="{x1 - 10}" y="{ya + 4:.1f}" text-anchor="end">{label}  #{item.left}</text>'
            f'<text x="{x2 + 10}" y="{yb + 4:.1f}">#{item.right} {mark} {label}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(
    items: Sequence[tuple[str, float]], axis_title: str, width: int = 520, color: str = "#4a78c2"
) -> str:
    """Horizontal bars of one score per label, on its own axis (zero line when the values
    cross it). Each chart has one scale: never two stages on one axis."""
    if not items:
        return '<p class="caption">(no scores)</p>'
    values = [v for _, v in items]
    low, high = min(0.0, min(values)), max(0.0, max(values))
    if high <= low:
        high = low + 1.0
    row, top, left, right = 20, 10, 200, 60
    height = top + row * len(items) + 40
    span = width - left - right

    def x(v: float) -> float:
        return left + span * (v - low) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{e(axis_title)}" '
        'font-family="system-ui, sans-serif" font-size="11">'
    ]
    zero = x(0.0)
    for i, (label, value) in enumerate(items):
        yy = top + row * i
        start, end = sorted((zero, x(value)))
        fill = color if value >= 0 else DOWN_COLOR
        parts.append(
            f"<g><title>{e(label)}: {value:.4g}</title>"
            f'<text x="{left - 6}" y="{yy + 14}" text-anchor="end">{e(_short(label, 30))}</text>'
            f'<rect x="{start:.1f}" y="{yy + 3}" width="{max(end - start, 1):.1f}" '
            f'height="{row - 6}" fill="{fill}"/>'
            f'<text x="{max(end, start) + 4:.1f}" y="{yy + 14}" fill="#333">{value:.3g}</text></g>'
        )
    base = top + row * len(items) + 4
    parts.append(
        f'<line x1="{left}" x2="{left + span}" y1="{base}" y2="{base}" stroke="#888"/>'
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{base}" stroke="#888"/>'
        f'<text x="{left}" y="{base + 14}" fill="#555">{low:.3g}</text>'
        f'<text x="{left + span}" y="{base + 14}" text-anchor="end" fill="#555">{high:.3g}</text>'
        f'<text x="{left + span / 2:.1f}" y="{base + 30}" text-anchor="middle" '
        f'fill="#333">{e(axis_title)}</text></svg>'
    )
    return "".join(parts)


def svg_dots(
    items: Sequence[tuple[str, float]], axis_title: str, width: int = 520, color: str = A_COLOR
) -> str:
    """One dot per label on a scale from the lowest to the highest score (not from 0: a
    logit's distance from 0 means nothing), best first, value printed beside it."""
    if not items:
        return '<p class="caption">(no scores)</p>'
    values = [v for _, v in items]
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or 0.5
    low, high = low - pad, high + pad
    row, top, left, right = 20, 10, 200, 60
    height = top + row * len(items) + 40
    span = width - left - right

    def x(v: float) -> float:
        return left + span * (v - low) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{e(axis_title)}" '
        'font-family="system-ui, sans-serif" font-size="11">'
    ]
    for i, (label, value) in enumerate(items):
        yy = top + row * i + row / 2
        parts.append(
            f"<g><title>{e(label)}: {value:.4g}</title>"
            f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{e(_short(label, 30))}</text>'
            f'<line x1="{left}" x2="{left + span}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>'
            f'<circle cx="{x(value):.1f}" cy="{yy:.1f}" r="5" fill="{color}"/>'
            f'<text x="{x(value) + 8:.1f}" y="{yy + 4:.1f}" fill="#333">{value:.3g}</text></g>'
        )
    base = top + row * len(items) + 4
    parts.append(
        f'<line x1="{left}" x2="{left + span}" y1="{base}" y2="{base}" stroke="#888"/>'
        f'<text x="{left}" y="{base + 14}" fill="#555">{low:.3g}</text>'
        f'<text x="{left + span}" y="{base + 14}" text-anchor="end" fill="#555">{high:.3g}</text>'
        f'<text x="{left + span / 2:.1f}" y="{base + 30}" text-anchor="middle" '
        f'fill="#333">{e(axis_title)} (dots on a scale from the lowest to the highest)</text></svg>'
    )
    return "".join(parts)


# --- HTML pieces --------------------------------------------------------------------------


def _kv(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{e(v)}</td>' if i in numeric else f"<td>{e(v)}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str, caption: str) -> str:
    return f'<div class="figure">{svg}<div class="caption">{e(caption)}</div></div>'


def _verdict(text: str, kind: str) -> str:
    return f'<div class="verdict v-{kind}">{e(text)}</div>'


def _note(note: str) -> str:
    return f'<div class="note">{e(note)}</div>' if note.strip() else ""


def _first_stage(result: SearchResult) -> str:
    label = RETRIEVER_LABELS.get(result.retriever, result.retriever)
    return label if result.retriever == "bm25" else f"{label} · {result.encoder}"


def document(title: str, body: str, subtitle: str = "") -> str:
    """A complete HTML page: inline styles, no script, nothing fetched."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{e(title)}</h1>"
        + (f'<p class="sub">{e(subtitle)}</p>' if subtitle else "")
        + body
        + f"<footer>Rerank workbench report · generated {e(stamp)} · self-contained: no "
        "network needed to view or print.</footer></body></html>\n"
    )


# --- sections -------------------------------------------------------------------------------


def search_section(result: SearchResult, note: str = "") -> str:
    """The current view: settings, timings, both orders, movement and score charts."""
    t = result.timings
    first = retrieval_score_label(result)
    second = (
        "fused"
        if result.fused
        else ("relevance" if result.score_kind == "relevance" else "logit")
        if result.reranker
        else None
    )
    settings = [
        ("query", result.query),
        ("dataset", result.dataset),
        ("first stage", _first_stage(result)),
        ("candidates / shown", f"{result.num_candidates} / {result.num_results}"),
        ("second stage", result.reranker or "none (retrieval order)"),
    ]
    if result.fused:
        settings.append(("fusion", f"weight {result.fusion_weight:g} ({result.fusion})"))
    settings.append(
        (
            "time",
            f"query encoding {t.query_encode * 1000:.0f} ms · search {t.search * 1000:.1f} ms"
            f" · rerank {t.rerank * 1000:.0f} ms · total {t.total * 1000:.0f} ms",
        )
    )
    left = _table(
        ["#", "title", first],
        [(c.retrieval_rank, c.title, _fmt(c.retrieval_score)) for c in result.top_retrieval],
        {0, 2},
    )
    right_rows = []
    for c in result.top_final:
        score = c.fused_score if result.fused else c.rerank_score
        right_rows.append((c.final_rank, c.title, _fmt(score), c.retrieval_rank, badge(c)))
    right = _table(["#", "title", second or first, "retrieval #", "move"], right_rows, {0, 2, 3})
    out = [
        "<section>",
        _kv(settings),
        _note(note),
        '<div class="cols"><div><h3>First-stage order</h3>',
        left,
        f"</div><div><h3>{'Fused' if result.fused else 'Reranked'} order</h3>",
        right,
        "</div></div>",
    ]
    if result.reranker:
        items = [
            SlopeItem(
                c.title, c.retrieval_rank, c.final_rank, not (c.in_retrieval_top and c.in_final_top)
            )
            for c in result.candidates
            if c.in_retrieval_top or c.in_final_top
        ]
        out.append("<h3>Rank movement</h3>")
        out.append(
            _figure(
                svg_slope(items, "First stage", "Second stage", result.num_results),
                "Each line is one item from its first-stage rank to its final rank; dashed: "
                f"entered or left the top-{result.num_results} (below the dotted line).",
            )
        )
        out.append('<div class="cols"><div>')
        out.append(
            _figure(
                svg_dots([(c.title, c.retrieval_score) for c in result.top_retrieval], first),
                f"First stage: {first} score (its own axis).",
            )
        )
        out.append("</div><div>")
        out.append(
            _figure(
                svg_dots(
                    [
                        (c.title, (c.fused_score if result.fused else c.rerank_score) or 0.0)
                        for c in result.top_final
                    ],
                    second or "",
                    color=B_COLOR,
                ),
                f"Second stage: {second} score (its own axis).",
            )
        )
        out.append("</div></div>")
    out.append("</section>")
    return "".join(out)


def head_to_head_section(h2h: HeadToHead, note: str = "", heading: str = "") -> str:
    """A vs B for one query: settings, timings, agreement, both lists, movement A → B,
    each side's scores on its own axis."""
    a, b = h2h.a, h2h.b
    r = a.result
    agree = h2h.agreement
    n = h2h.num_results
    shared = " (same model as A: scores computed once, shown for both)" if b.shared_scores else ""
    settings = [
        ("query", h2h.query),
        ("dataset", r.dataset),
        ("first stage", _first_stage(r)),
        ("candidates / compared", f"{candidates_phrase(h2h)} / top {n}"),
        ("reranker reads", ", ".join(a.result.rerank_fields or b.result.rerank_fields) or "—"),
        ("A", f"{a.spec.label} · score: {a.score_label}"),
        ("B", f"{b.spec.label} · score: {b.score_label}"),
        (
            "time",
            f"first stage {h2h.retrieval_seconds * 1000:.0f} ms · A {a.seconds * 1000:.0f} ms"
            f" · B {b.seconds * 1000:.0f} ms{shared}",
        ),
        (
            "agreement",
            f"Kendall τ {agree.kendall_tau:+.2f} · RBO (p=0.9) {agree.rbo:.2f} · "
            f"overlap@{n} {agree.overlap:.0%} · same top result: "
            f"{'yes' if agree.top_same else 'no'}",
        ),
    ]
    for side, name in ((a, "A"), (b, "B")):
        if side.cached_pairs and not side.shared_scores:
            settings.append(
                (
                    f"{name} cache",
                    f"{side.cached_pairs} of {r.num_candidates} pairs came from the reranker's "
                    "in-memory score cache (its time is lower than a cold run)",
                )
            )
        if side.result.notice:
            settings.append((f"{name} notice", side.result.notice))
        truncated = sum(c.truncated for c in side.result.candidates)
        if truncated:
            settings.append((f"{name} truncated", f"{truncated} candidate text(s) truncated"))
    ranks_b, ranks_a = b.ranks, a.ranks

    def side_table(side, other_ranks) -> str:
        rows = []
        for c in side.result.top_final:
            move = other_ranks[c.id] - c.final_rank
            mark = f"{UP} {move}" if move > 0 else f"{DOWN} {-move}" if move < 0 else "="
            rows.append((c.final_rank, c.title, _fmt(side.score(c)), other_ranks[c.id], mark))
        return _table(["#", "title", side.score_label, "other #", "vs other"], rows, {0, 2, 3})

    items = [
        SlopeItem(
            row["title"], row["rank_a"], row["rank_b"], not (row["in_top_a"] and row["in_top_b"])
        )
        for row in h2h.rows()
    ]
    out = [
        "<section>",
        f"<h3>{e(heading)}</h3>" if heading else "",
        _kv(settings),
        _note(note),
        f'<div class="cols"><div><h3>A · {e(a.spec.label)}</h3>',
        side_table(a, ranks_b),
        f"</div><div><h3>B · {e(b.spec.label)}</h3>",
        side_table(b, ranks_a),
        "</div></div><h3>Movement from A to B</h3>",
        _figure(
            svg_slope(items, f"A: {_short(a.spec.label, 40)}", f"B: {_short(b.spec.label, 40)}", n),
            f"Each line is one item from its rank under A to its rank under B; blue {UP}: B ranks "
            f"it higher, vermillion {DOWN}: lower. Dashed: in only one top-{n} (below the "
            "dotted line).",
        ),
        '<div class="cols"><div>',
        _figure(
            svg_dots([(c.title, a.score(c) or 0.0) for c in a.result.top_final], a.score_label),
            f"A's scores ({a.score_label}), on A's own axis.",
        ),
        "</div><div>",
        _figure(
            svg_dots(
                [(c.title, b.score(c) or 0.0) for c in b.result.top_final],
                b.score_label,
                color=B_COLOR,
            ),
            f"B's scores ({b.score_label}), on B's own axis.",
        ),
        "</div></div></section>",
    ]
    return "".join(out)


def blind_section(votes: Sequence[Vote], *, query_of_step: Sequence[str] = ()) -> str:
    """The blind test's reveal: across steps (sign test; the preferred side's share of the
    non-tie votes with its Wilson interval), Bradley-Terry strengths when the steps
    compared more than two systems, one line per step with that step's own A and B, then
    every vote (who, which side was which)."""
    if not votes:
        return "<section><h2>Blind test</h2><p>No votes were cast.</p></section>"
    whole = overall_tally(votes)
    kind = "none" if whole.verdict == "no clear preference" else "good"
    per_step = []
    for step, t in step_tallies(votes):
        query = query_of_step[step] if step < len(query_of_step) else ""
        share = t.preference
        shown = (
            "–" if share.share is None else f"{share.share:.0%} [{share.low:.0%}, {share.high:.0%}]"
        )
        per_step.append(
            (step + 1, query, t.a, t.b, t.a_votes, t.b_votes, t.ties, f"{t.p_value:.2g}", shown)
        )
    bt = strengths(votes)
    bt_table = ""
    if len(bt.systems) > 2:
        bt_rows = [tuple(r.values()) for r in strengths_rows(bt)]
        bt_table = (
            "<h3>Systems across steps (Bradley-Terry; a tie is half a win each)</h3>"
            + _table(
                ["system", "score", "95% CI", "P(preferred to an average system)"],
                bt_rows,
                {1},
            )
        )
    rows = [
        (
            v.step + 1,
            v.query,
            "A | B" if v.a_left else "B | A",
            v.choice,
            v.winner,
            v.voter,
        )
        for v in votes
    ]
    return (
        "<section><h2>Blind test</h2>"
        + _verdict("Across steps: " + whole.sentence(), kind)
        + bt_table
        + _table(
            [
                "step",
                "query",
                "A",
                "B",
                "A votes",
                "B votes",
                "ties",
                "sign test p",
                "A share of non-tie votes [95% CI]",
            ],
            per_step,
            {0, 4, 5, 6, 7},
        )
        + "<h3>Every vote</h3>"
        + _table(["step", "query", "left / right", "vote", "preferred", "voter"], rows, {0})
        + "</section>"
    )


def pair_section(report: PairReport, disagreements: int = 5) -> str:
    """A vs B on labelled data: means, the verdict with its interval, W/T/L, the per-query
    change chart and the queries where they disagree most."""
    c = report.comparison
    kind = {"B better": "good", "A better": "bad"}.get(report.verdict, "none")
    metrics = ("ndcg@10", "mrr@10", "recall@100", "precision@10")
    labels = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@100": "Recall@100"}
    means = _table(
        ["run", *[labels.get(m, "P@10") for m in metrics], "second stage (s)"],
        [
            (
                f"A · {report.a}",
                *[_fmt(report.mean_a[m], 4) for m in metrics],
                _fmt(report.a_seconds, 1),
            ),
            (
                f"B · {report.b}",
                *[_fmt(report.mean_b[m], 4) for m in metrics],
                _fmt(report.b_seconds, 1),
            ),
        ],
        {1, 2, 3, 4, 5},
    )
    changed = [(q.qid, q.delta) for q in report.queries if abs(q.delta) > 1e-9]
    shown = sorted(sorted(changed, key=lambda x: -abs(x[1]))[:MAX_BARS], key=lambda x: -x[1])
    unchanged = len(report.queries) - len(changed)
    left_out = len(changed) - len(shown)
    bars_caption = (
        "One bar per query whose nDCG@10 changed, B minus A; vermillion bars: A was better there. "
        f"{unchanged} quer{'y' if unchanged == 1 else 'ies'} with no change not drawn"
        + (
            f"; {left_out} smaller changes left out (the {MAX_BARS} largest shown)."
            if left_out
            else "."
        )
    )
    worst = _table(
        ["query id", "query", "A nDCG@10", "B nDCG@10", "B − A", "Kendall τ"],
        [
            (
                q.qid,
                q.query,
                _fmt(q.a[PRIMARY_METRIC]),
                _fmt(q.b[PRIMARY_METRIC]),
                f"{q.delta:+.3f}",
                f"{q.kendall_tau:+.2f}",
            )
            for q in report.disagreements(disagreements)
        ],
        {2, 3, 4, 5},
    )
    stage = (
        report.retriever if report.retriever == "bm25" else f"{report.retriever} ({report.encoder})"
    )
    return (
        "<section>"
        + _kv(
            [
                ("dataset", report.dataset + (f" ({report.split} split)" if report.split else "")),
                ("queries", len(report.queries)),
                ("first stage", f"{stage}, {report.candidates} candidates"),
                ("A", report.a),
                ("B", report.b),
                (
                    "time",
                    f"first stage {report.first_stage_seconds:.1f} s · A {report.a_seconds:.1f} s"
                    f" · B {report.b_seconds:.1f} s"
                    + (" (same model: scored once)" if report.shared_scores else "")
                    + f" · pairs scored {report.pairs_scored:,}, "
                    f"from cache {report.pairs_cached:,}",
                ),
            ]
        )
        + _verdict(f"{report.verdict}. {report.sentence()}", kind)
        + f"<p>Wins / ties / losses (per query, nDCG@10): A {c.losses} · ties {c.ties} · "
        f"B {c.wins}.</p>"
        + means
        + "<h3>Per-query change</h3>"
        + (
            _figure(
                svg_bars(shown, "nDCG@10 B − A per query", width=860, color=UP_COLOR),
                bars_caption,
            )
            if shown
            else f"<p>No query's nDCG@10 changed between A and B ({unchanged} queries).</p>"
        )
        + "<h3>Where A and B disagree most</h3>"
        + worst
        + "</section>"
    )


# --- whole reports ----------------------------------------------------------------------------


def manifest_section(manifest: Any) -> str:
    """What a result was computed from (a :class:`core.present.manifest.Manifest`): the
    fingerprint, every hashed file with its sha256, the models' runtimes and the package
    versions; every value escaped."""
    rows = [("fingerprint", manifest.fingerprint), ("made", manifest.created)]
    rows += [(what, f"sha256 {digest}") for what, digest in manifest.files()]
    rows += [(m.role, f"{m.model} on {m.runtime}") for m in manifest.models]
    rows += [("packages", ", ".join(f"{k} {v}" for k, v in manifest.packages.items()))]
    return f"<section><h2>Reproducibility</h2>{_kv(rows)}</section>"


def search_report(
    result: SearchResult, note: str = "", manifest: Any = None, explanations: Sequence[Shown] = ()
) -> str:
    """The current Search view as a standalone HTML file (with its manifest, if given,
    and the explanations the user opened)."""
    body = (
        search_section(result, note)
        + explanations_section(explanations)
        + (manifest_section(manifest) if manifest else "")
    )
    return document(f"Search: {result.query}", body, result.dataset)


def head_to_head_report(h2h: HeadToHead, note: str = "", explanations: Sequence[Shown] = ()) -> str:
    """One head-to-head as a standalone HTML file (with the explanations opened)."""
    return document(
        f"Head to head: {h2h.query}",
        head_to_head_section(h2h, note) + explanations_section(explanations),
        f"A: {h2h.a.spec.label} · B: {h2h.b.spec.label}",
    )


def pair_report_html(report: PairReport) -> str:
    """An A vs B evaluation as a standalone HTML file."""
    return document(
        f"A vs B on {report.dataset}", pair_section(report), f"A: {report.a} · B: {report.b}"
    )


def walkthrough_report(
    title: str,
    steps: Sequence[tuple[HeadToHead, str]],
    votes: Sequence[Vote] = (),
    explanations: Mapping[int, Sequence[Shown]] | None = None,
    labels: Mapping[int, Mapping[str, int]] | None = None,
) -> str:
    """Every step of a walkthrough (its own A and B, a verdict line, the head-to-head,
    the note and its pinned explanations, keyed by 0-based step), then the blind test's
    votes across and per step. ``labels`` (by 0-based step: document id -> grade) give
    a step without votes its verdict by the labels."""
    pinned = explanations or {}
    tallies = dict(step_tallies(votes))
    pairs = {(h2h.a.spec.label, h2h.b.spec.label) for h2h, _ in steps}
    body = []
    if len(pairs) == 1:
        a, b = pairs.pop()
        body.append(f'<p class="sub">{len(steps)} step(s) · A: {e(a)} · B: {e(b)}</p>')
    elif steps:
        body.append(f'<p class="sub">{len(steps)} step(s); A and B are named in each step.</p>')
    for number, (h2h, note) in enumerate(steps, start=1):
        body.append(
            f'<section class="step"><h2>Step {number}: {e(h2h.query)}</h2>'
            f'<p class="sub">A: {e(h2h.a.spec.label)} · B: {e(h2h.b.spec.label)}</p>'
            + _verdict(
                step_verdict(h2h, tallies.get(number - 1), (labels or {}).get(number - 1)),
                "none",
            )
            + head_to_head_section(h2h, note)
            + explanations_section(pinned.get(number - 1, ()), "Pinned explanation")
            + "</section>"
        )
    if votes:
        body.append(blind_section(votes, query_of_step=[h.query for h, _ in steps]))
    return document(title, "".join(body), "Walkthrough report")
