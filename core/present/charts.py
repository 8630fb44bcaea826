"""Altair charts of a search result: the rank-movement slope chart and score bars.

Each stage's scores get their own chart and their own labelled axis: cosine
similarity and cross-encoder scores are on different scales and are never drawn on
one axis.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.present.views import badge, direction
from core.search.pipeline import SearchResult

DIRECTION_COLORS = {"up": "#1a9850", "down": "#d73027", "same": "#8c8c8c"}
STAGES = ("Retrieval", "Reranked")


def _short(title: str, width: int = 38) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def movement_frame(result: SearchResult, marked: Collection[str] = ()) -> pd.DataFrame:
    """Two rows per item in either top-N (one per stage), for the slope chart.

    Items whose id is in ``marked`` (e.g. judged relevant) get a ★ before their label.
    """
    n = result.num_results
    rows = []
    for c in result.candidates:
        if not (c.in_retrieval_top or c.in_final_top):
            continue
        status = "entered top-N" if c.entered else "left top-N" if c.left else "stayed in top-N"
        common = {
            "id": c.id,
            "title": c.title,
            "label": ("★ " if c.id in marked else "") + _short(c.title),
            "direction": direction(c),
            "status": status,
            "badge": badge(c) or "=",
            "retrieval_rank": c.retrieval_rank,
            "rerank_rank": c.final_rank,
            "cosine": round(c.retrieval_score, 4),
            "rerank_score": None if c.rerank_score is None else round(c.rerank_score, 3),
            "outside": not (c.in_retrieval_top and c.in_final_top),
            "n": n,
        }
        common["left_label"] = f"{common['label']}  #{c.retrieval_rank}"
        common["right_label"] = f"#{c.final_rank}  {common['label']}"
        rows.append({**common, "stage": STAGES[0], "rank": c.retrieval_rank})
        rows.append({**common, "stage": STAGES[1], "rank": c.final_rank})
    return pd.DataFrame(rows)


def movement_chart(
    result: SearchResult, height: int | None = None, marked: Collection[str] = ()
) -> alt.LayerChart:
    """Slope (bump) chart from retrieval rank to rerank rank, one line per item.

    Lines are coloured by direction; items that entered or left the top-N are drawn
    with hollow points and a dashed line, and a rule marks the top-N cut.
    """
    data = movement_frame(result, marked)
    max_rank = int(data["rank"].max()) if not data.empty else result.num_results
    height = height or max(260, min(900, 22 * min(max_rank, 40) + 40))
    # No rank axis: every label carries its rank, and an axis would collide with the
    # left-hand labels.
    y = alt.Y(
        "rank:Q",
        scale=alt.Scale(reverse=True, domain=[1, max(max_rank, 2)], nice=False),
        axis=alt.Axis(labels=False, ticks=False, domain=False, title=None, grid=False),
    )
    x = alt.X("stage:N", sort=list(STAGES), title=None, axis=alt.Axis(labelAngle=0, orient="top"))
    color = alt.Color(
        "direction:N",
        scale=alt.Scale(domain=list(DIRECTION_COLORS), range=list(DIRECTION_COLORS.values())),
        legend=alt.Legend(title="movement", orient="bottom"),
    )
    tooltip = [
        alt.Tooltip("title:N"),
        alt.Tooltip("retrieval_rank:Q", title="retrieval rank"),
        alt.Tooltip("rerank_rank:Q", title="rerank rank"),
        alt.Tooltip("cosine:Q", title=f"{result.retrieval_score_kind} score", format=".3f"),
        alt.Tooltip("rerank_score:Q", title="rerank score", format=".2f"),
        alt.Tooltip("status:N"),
    ]
    hover = alt.selection_point(fields=["id"], on="pointerover", empty=False)
    base = alt.Chart(data).encode(x=x, y=y, color=color, detail="id:N", tooltip=tooltip)
    lines = base.mark_line(strokeWidth=2).encode(
        strokeDash=alt.condition("datum.outside", alt.value([5, 3]), alt.value([1, 0])),
        opacity=alt.condition(hover, alt.value(1.0), alt.value(0.7)),
        strokeWidth=alt.condition(hover, alt.value(4), alt.value(2)),
    )
    points = (
        base.mark_point(size=70, filled=True)
        .encode(
            shape=alt.Shape(
                "status:N",
                scale=alt.Scale(
                    domain=["stayed in top-N", "entered top-N", "left top-N"],
                    range=["circle", "triangle-up", "cross"],
                ),
                legend=alt.Legend(title="top-N", orient="bottom"),
            )
        )
        .add_params(hover)
    )
    left_labels = (
        base.transform_filter(alt.datum.stage == STAGES[0])
        .mark_text(align="right", dx=-10, fontSize=11)
        .encode(text="left_label:N")
    )
    right_labels = (
        base.transform_filter(alt.datum.stage == STAGES[1])
        .mark_text(align="left", dx=10, fontSize=11)
        .encode(text="right_label:N")
    )
    cut = (
        alt.Chart(pd.DataFrame({"rank": [result.num_results + 0.5]}))
        .mark_rule(strokeDash=[2, 2], color="#555")
        .encode(y="rank:Q")
    )
    return alt.layer(cut, lines, points, left_labels, right_labels).properties(
        height=height, padding={"left": 230, "right": 230, "top": 10, "bottom": 10}
    )


RETRIEVAL_AXIS_TITLES = {
    "cosine": "cosine similarity (bi-encoder)",
    "bm25": "BM25 score (lexical)",
    "rrf": "RRF score (dense + BM25)",
}


def score_chart(result: SearchResult, stage: str, *, normalized: bool = False) -> alt.Chart:
    """Horizontal bars of one stage's scores for its own top-N, on its own axis.

    ``stage`` is ``"retrieval"`` (cosine similarity) or ``"rerank"`` (raw logit, or
    ``sigmoid(logit)`` / hosted relevance when ``normalized``).
    """
    if stage == "retrieval":
        items = result.top_retrieval
        values = [c.retrieval_score for c in items]
        ranks = [c.retrieval_rank for c in items]
        axis_title = RETRIEVAL_AXIS_TITLES.get(
            result.retrieval_score_kind, f"{result.retrieval_score_kind} score"
        )
    else:
        items = [c for c in result.top_final if c.rerank_score is not None]
        ranks = [c.final_rank for c in items]
        if normalized or result.score_kind == "relevance":
            values = [c.rerank_normalized for c in items]
            axis_title = (
                "relevance score (hosted, 0–1)"
                if result.score_kind == "relevance"
                else "sigmoid(logit), 0–1"
            )
        else:
            values = [c.rerank_score for c in items]
            axis_title = "cross-encoder logit (raw)"
    data = pd.DataFrame(
        {
            "label": [f"{r}. {_short(c.title, 34)}" for r, c in zip(ranks, items, strict=True)],
            "title": [c.title for c in items],
            "score": values,
            "rank": ranks,
            "direction": [direction(c) if stage != "retrieval" else "same" for c in items],
        }
    )
    # Bars grow from a baseline: 0 for cosine and 0–1 scores, and just below the lowest
    # score for raw logits, which are often all negative (a bar from 0 would make the
    # best result the shortest).
    raw_logits = stage != "retrieval" and axis_title.startswith("cross-encoder logit")
    baseline = float(np.floor(min(values))) - 0.5 if raw_logits and values else 0.0
    data["baseline"] = baseline
    color = (
        alt.Color(
            "direction:N",
            scale=alt.Scale(domain=list(DIRECTION_COLORS), range=list(DIRECTION_COLORS.values())),
            legend=None,
        )
        if stage != "retrieval"
        else alt.value("#4c78a8")
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title=axis_title, scale=alt.Scale(zero=not raw_logits)),
            x2="baseline:Q",
            y=alt.Y(
                "label:N",
                sort=alt.EncodingSortField("rank", order="ascending"),
                title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=260),
            ),
            color=color,
            tooltip=[
                alt.Tooltip("title:N"),
                alt.Tooltip("rank:Q"),
                alt.Tooltip("score:Q", format=".4f"),
            ],
        )
        .properties(height=alt.Step(26))
    )


def outcome_chart(rows: list[dict]) -> alt.Chart:
    """Per-query change in nDCG@10 from reranking, one bar per query, sorted.

    ``rows`` are :meth:`core.quality.evaluation_report.EvaluationReport.rows`; green bars are wins,
    red losses, grey ties.
    """
    data = pd.DataFrame(
        {
            "query": [str(r["query"]) for r in rows],
            "qid": [str(r["qid"]) for r in rows],
            "delta": [r["delta"] or 0.0 for r in rows],
            "outcome": [r["outcome"] or "tie" for r in rows],
        }
    )
    colors = {"win": DIRECTION_COLORS["up"], "loss": DIRECTION_COLORS["down"], "tie": "#8c8c8c"}
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("qid:N", sort="-y", axis=alt.Axis(labels=False, ticks=False), title="queries"),
            y=alt.Y("delta:Q", title="reranked − retrieval nDCG@10"),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=list(colors), range=list(colors.values())),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=["qid:N", "query:N", alt.Tooltip("delta:Q", format="+.3f"), "outcome:N"],
        )
        .properties(height=220)
    )


# --- diagnostics: recall ceiling and field ablation (core.quality.diagnostics) -------------------

from core.quality.diagnostics import AblationReport, CeilingReport  # noqa: E402

REACHED_COLOR = "#4c78a8"
LATENCY_COLOR = "#e45756"


def ceiling_frame(report: CeilingReport) -> pd.DataFrame:
    """One row per point of the ceiling curve: candidates, reached, estimated ms."""
    return pd.DataFrame(
        {
            "candidates": [p.candidates for p in report.curve],
            "reached": [p.reached for p in report.curve],
            "estimated_ms": [round(p.estimated_ms, 1) for p in report.curve],
            "current": [p.candidates == report.num_candidates for p in report.curve],
        }
    )


def ceiling_chart(report: CeilingReport, height: int = 320) -> alt.LayerChart:
    """Ideal top-N items reached (left axis, steps) and the estimated rerank time (right
    axis, dashed) as the number of candidates grows (log scale); a rule marks the
    current setting. Time is the measured per-pair cost times the candidate count."""
    data = ceiling_frame(report)
    n = report.num_results
    x = alt.X(
        "candidates:Q",
        scale=alt.Scale(type="log", domain=[1, max(report.corpus_size, 2)], nice=False),
        axis=alt.Axis(values=[1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000], format="d"),
        title="candidates retrieved (log scale)",
    )
    tooltip = [
        alt.Tooltip("candidates:Q", title="candidates"),
        alt.Tooltip("reached:Q", title=f"ideal top-{n} reached"),
        alt.Tooltip("estimated_ms:Q", title="est. rerank ms", format=",.0f"),
    ]
    base = alt.Chart(data).encode(x=x, tooltip=tooltip)
    reached_y = alt.Y(
        "reached:Q",
        scale=alt.Scale(domain=[0, n], nice=False),
        axis=alt.Axis(titleColor=REACHED_COLOR, tickMinStep=1, format="d"),
        title=f"items of the reranker's ideal top-{n} reached",
    )
    reached = alt.layer(
        base.mark_line(interpolate="step-after", color=REACHED_COLOR, strokeWidth=3).encode(
            y=reached_y
        ),
        base.mark_point(filled=True, size=40, color=REACHED_COLOR).encode(y=reached_y),
    )
    latency = base.mark_line(color=LATENCY_COLOR, strokeDash=[6, 3], strokeWidth=2).encode(
        y=alt.Y(
            "estimated_ms:Q",
            axis=alt.Axis(titleColor=LATENCY_COLOR, orient="right", format=",.0f"),
            title="estimated rerank time (ms)",
        )
    )
    marker = pd.DataFrame(
        {
            "candidates": [report.num_candidates],
            "label": [f"now: {report.num_candidates} → {report.reached}/{n}"],
        }
    )
    rule = alt.Chart(marker).mark_rule(color="#333", strokeDash=[2, 2]).encode(x="candidates:Q")
    text = (
        alt.Chart(marker)
        .mark_text(align="left", dx=5, dy=2, baseline="top", fontSize=12, color="#333")
        .encode(x="candidates:Q", y=alt.value(4), text="label:N")
    )
    return (
        alt.layer(reached, latency, rule, text)
        .resolve_scale(y="independent")
        .properties(height=height)
    )


def ablation_frame(report: AblationReport) -> pd.DataFrame:
    """Rows (item, variant) for every item in any variant's top-N, for the bump chart.

    Ranks below ``cap`` (twice N, at least N + 10) are drawn at ``cap + 1``
    (``clipped``); ``rank`` always holds the true rank.
    """
    n = report.num_results
    cap = min(len(report.candidates), max(2 * n, n + 10))
    names = report.names
    rows = []
    for doc_id in report.top_union():
        title = report.title(doc_id)
        ranks = report.ranks(doc_id)
        for name in names:
            rank = ranks[name]
            clipped = rank > cap
            rows.append(
                {
                    "id": doc_id,
                    "title": title,
                    "variant": name,
                    "rank": rank,
                    "y": cap + 1 if clipped else rank,
                    "clipped": clipped,
                    "in_top": rank <= n,
                    "left_label": f"{_short(title, 30)}  #{rank}",
                    "right_label": f"#{rank}  {_short(title, 30)}",
                    "all_ranks": " · ".join(f"{k}: #{v}" for k, v in ranks.items()),
                }
            )
    return pd.DataFrame(rows)


def ablation_chart(report: AblationReport) -> alt.LayerChart:
    """Bump chart: each top item's rank under each field variant (left to right).

    A line per item in any variant's top-N; a dotted rule marks the top-N cut, and
    items ranked far below it sit on the bottom row ("further down", hover for ranks).
    """
    data = ablation_frame(report)
    n = report.num_results
    names = list(report.names)
    cap = int(data["y"].max()) if not data.empty else n
    height = max(260, min(900, 20 * cap + 40))
    y = alt.Y(
        "y:Q",
        scale=alt.Scale(reverse=True, domain=[1, max(cap, 2)], nice=False),
        axis=alt.Axis(labels=False, ticks=False, domain=False, title=None, grid=False),
    )
    x = alt.X("variant:N", sort=names, title=None, axis=alt.Axis(labelAngle=0, orient="top"))
    tooltip = [
        alt.Tooltip("title:N"),
        alt.Tooltip("variant:N", title="fields"),
        alt.Tooltip("rank:Q"),
        alt.Tooltip("all_ranks:N", title="ranks"),
    ]
    base = alt.Chart(data).encode(
        x=x,
        y=y,
        color=alt.Color("id:N", legend=None, scale=alt.Scale(scheme="tableau10")),
        detail="id:N",
        tooltip=tooltip,
    )
    lines = base.mark_line(strokeWidth=2, opacity=0.75)
    points = base.mark_point(size=70, filled=True).encode(
        shape=alt.condition("datum.in_top", alt.value("circle"), alt.value("diamond"))
    )
    shown = alt.datum.clipped == False  # noqa: E712 - a Vega expression, not Python
    left = (
        base.transform_filter((alt.datum.variant == names[0]) & shown)
        .mark_text(align="right", dx=-10, fontSize=11)
        .encode(text="left_label:N")
    )
    right = (
        base.transform_filter((alt.datum.variant == names[-1]) & shown)
        .mark_text(align="left", dx=10, fontSize=11)
        .encode(text="right_label:N")
    )
    layers = [lines, points, left, right]
    if len(names) > 2:
        middle = (
            base.transform_filter(
                (alt.datum.variant != names[0]) & (alt.datum.variant != names[-1])
            )
            .transform_filter(shown)
            .mark_text(align="left", dx=8, dy=-7, fontSize=10, color="#555")
            .encode(text=alt.Text("rank:Q", format="d"))
        )
        layers.append(middle)
    cut = (
        alt.Chart(pd.DataFrame({"y": [n + 0.5]}))
        .mark_rule(strokeDash=[2, 2], color="#555")
        .encode(y="y:Q")
    )
    layers.insert(0, cut)
    if not data.empty and bool(data["clipped"].any()):
        further = (
            alt.Chart(pd.DataFrame({"y": [cap], "variant": [names[0]]}))
            .mark_text(align="right", dx=-10, fontSize=11, color="#777", fontStyle="italic")
            .encode(
                x=alt.X("variant:N", sort=names),
                y="y:Q",
                text=alt.value(f"further down (below #{cap - 1})"),
            )
        )
        layers.append(further)
    return alt.layer(*layers).properties(
        width=alt.Step(190),
        height=height,
        padding={"left": 210, "right": 210, "top": 10, "bottom": 10},
    )


# --- quality against cost (core.quality.tuning) --------------------------------------

from core.quality.tuning_cost import CostPoint, best_point, cheapest_within_noise  # noqa: E402

SECOND_STAGE_SHAPES = {"alone": "circle", "rerank": "triangle-up", "fuse": "diamond"}


def cost_frame(points: Sequence[CostPoint]) -> pd.DataFrame:
    """One row per timed setting: ms per query, nDCG@10 and its interval, first stage,
    second stage kind, and whether it is the best or the cheapest within noise."""
    best = best_point(points) if points else None
    cheapest = cheapest_within_noise(points)
    rows = []
    for p in points:
        if p.ms is None:
            continue
        kind = "alone" if not p.config.reranked else "rerank" if p.config.weight >= 1 else "fuse"
        role = "best" if p is best else "cheapest within noise" if p is cheapest else ""
        rows.append(
            {
                "setting": p.config.label,
                "first_stage": p.config.stage.label,
                "second_stage": kind,
                "depth": p.config.depth,
                "weight": p.config.weight if p.config.reranked else None,
                "ms": round(p.ms, 2),
                "ndcg": round(p.ndcg, 4),
                "low": round(p.low, 4),
                "high": round(p.high, 4),
                "within_noise": "yes" if p.within_noise else "no",
                "role": role,
            }
        )
    return pd.DataFrame(rows)


def cost_chart(points: Sequence[CostPoint], height: int = 380) -> alt.LayerChart:
    """nDCG@10 (with its 95% interval) against measured ms per query (log scale), one
    mark per setting: colour = first stage, shape = second stage. The best setting and
    the cheapest within noise of it (paired bootstrap against the best) are ringed and
    labelled."""
    data = cost_frame(points)
    if data.empty:
        data = pd.DataFrame(
            columns=["setting", "first_stage", "second_stage", "ms", "ndcg", "low", "high"]
        )
    x = alt.X(
        "ms:Q",
        scale=alt.Scale(type="log", nice=False, padding=12),
        title="measured time per query (ms, log scale)",
    )
    y_scale = alt.Scale(zero=False, nice=False, padding=10)
    tooltip = [
        alt.Tooltip("setting:N"),
        alt.Tooltip("ndcg:Q", title="nDCG@10", format=".4f"),
        alt.Tooltip("low:Q", title="95% CI low", format=".4f"),
        alt.Tooltip("high:Q", title="95% CI high", format=".4f"),
        alt.Tooltip("ms:Q", title="ms/query", format=",.1f"),
        alt.Tooltip("within_noise:N", title="within noise of best"),
    ]
    base = alt.Chart(data).encode(x=x)
    color = alt.Color(
        "first_stage:N",
        title="first stage",
        scale=alt.Scale(scheme="tableau10"),
        legend=alt.Legend(orient="bottom", labelLimit=320),
    )
    bars = base.mark_rule(opacity=0.35).encode(
        y=alt.Y("low:Q", scale=y_scale, title="nDCG@10 (95% CI)"), y2="high:Q", color=color
    )
    marks = base.mark_point(filled=True, size=60, opacity=0.85).encode(
        y=alt.Y("ndcg:Q", scale=y_scale),
        color=color,
        shape=alt.Shape(
            "second_stage:N",
            title="second stage",
            scale=alt.Scale(
                domain=list(SECOND_STAGE_SHAPES), range=list(SECOND_STAGE_SHAPES.values())
            ),
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=tooltip,
    )
    named = base.transform_filter(alt.datum.role != "")
    rings = named.mark_point(size=260, color="#111", strokeWidth=2).encode(y="ndcg:Q")
    labels = (
        named.mark_text(align="left", dx=12, dy=-10, fontSize=12, color="#111")
        .encode(y="ndcg:Q", text=alt.Text("label:N"))
        .transform_calculate(label="datum.role + ': ' + datum.setting")
    )
    return alt.layer(bars, marks, rings, labels).properties(height=height)
