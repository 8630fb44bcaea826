"""Altair charts of a head-to-head: movement from A's order to B's, and each side's
scores on its own axis (A's and B's scales are never drawn on one axis).

Up/down use a colour-blind-safe pair (blue/vermillion) and carry ▲/▼ in their labels;
scores are dots on a scale from the lowest to the highest (never bars from 0: a logit's
distance from 0 means nothing), in neutral colours for A and B."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.present.room import A_COLOR, DOWN, DOWN_COLOR, SAME_COLOR, UP, UP_COLOR
from core.quality.headtohead import HeadToHead, Side

DIRECTION_COLORS = {"up": UP_COLOR, "down": DOWN_COLOR, "same": SAME_COLOR}
DIRECTION_NAMES = {"up": f"{UP} B ranks it higher", "down": f"{DOWN} lower", "same": "= same"}


def _short(title: str, width: int = 38) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def h2h_movement_frame(h2h: HeadToHead) -> pd.DataFrame:
    """Two rows per item in either top-N: its rank under A and under B."""
    rows = []
    for row in h2h.rows():
        move = row["move"]
        mark = f"{UP} " if move > 0 else f"{DOWN} " if move < 0 else ""
        common = {
            "id": row["id"],
            "title": row["title"],
            "rank_a": row["rank_a"],
            "rank_b": row["rank_b"],
            "direction": DIRECTION_NAMES["up" if move > 0 else "down" if move < 0 else "same"],
            "outside": not (row["in_top_a"] and row["in_top_b"]),
            "left_label": f"{_short(row['title'])}  #{row['rank_a']}",
            "right_label": f"#{row['rank_b']} {mark} {_short(row['title'])}",
        }
        rows.append({**common, "side": "A", "rank": row["rank_a"]})
        rows.append({**common, "side": "B", "rank": row["rank_b"]})
    return pd.DataFrame(rows)


def h2h_movement_chart(h2h: HeadToHead) -> alt.LayerChart:
    """Slope chart from A's rank (left) to B's rank (right), one line per item; blue ▲
    when B ranks it higher, vermillion ▼ lower, dashed when in only one of the two top-N."""
    data = h2h_movement_frame(h2h)
    max_rank = int(data["rank"].max()) if not data.empty else h2h.num_results
    height = max(240, min(900, 22 * min(max_rank, 40) + 40))
    y = alt.Y(
        "rank:Q",
        scale=alt.Scale(reverse=True, domain=[1, max(max_rank, 2)], nice=False),
        axis=alt.Axis(labels=False, ticks=False, domain=False, title=None, grid=False),
    )
    x = alt.X("side:N", sort=["A", "B"], title=None, axis=alt.Axis(labelAngle=0, orient="top"))
    color = alt.Color(
        "direction:N",
        scale=alt.Scale(
            domain=list(DIRECTION_NAMES.values()), range=list(DIRECTION_COLORS.values())
        ),
        legend=alt.Legend(title="B vs A", orient="bottom"),
    )
    tooltip = [
        alt.Tooltip("title:N"),
        alt.Tooltip("rank_a:Q", title="rank under A"),
        alt.Tooltip("rank_b:Q", title="rank under B"),
    ]
    base = alt.Chart(data).encode(x=x, y=y, color=color, detail="id:N", tooltip=tooltip)
    lines = base.mark_line(strokeWidth=2).encode(
        strokeDash=alt.condition("datum.outside", alt.value([5, 3]), alt.value([1, 0]))
    )
    points = base.mark_point(size=60, filled=True)
    left = (
        base.transform_filter(alt.datum.side == "A")
        .mark_text(align="right", dx=-10, fontSize=11)
        .encode(text="left_label:N")
    )
    right = (
        base.transform_filter(alt.datum.side == "B")
        .mark_text(align="left", dx=10, fontSize=11)
        .encode(text="right_label:N")
    )
    cut = (
        alt.Chart(pd.DataFrame({"rank": [h2h.num_results + 0.5]}))
        .mark_rule(strokeDash=[2, 2], color="#555")
        .encode(y="rank:Q")
    )
    return alt.layer(cut, lines, points, left, right).properties(
        height=height, padding={"left": 230, "right": 230, "top": 10, "bottom": 10}
    )


def side_score_chart(side: Side, color: str = A_COLOR) -> alt.Chart:
    """Dots of one side's top-N scores on that side's own axis, from its lowest to its
    highest score (not from 0), best first."""
    top = side.result.top_final
    data = pd.DataFrame(
        {
            "label": [f"{c.final_rank}. {_short(c.title, 30)}" for c in top],
            "score": [side.score(c) for c in top],
            "rank": [c.final_rank for c in top],
        }
    )
    y = alt.Y(
        "label:N",
        sort=alt.SortField("rank"),
        title=None,
        axis=alt.Axis(labelOverlap=False, labelLimit=220, labelFontSize=13),
    )
    x = alt.X("score:Q", title=side.score_label, scale=alt.Scale(zero=False, nice=True))
    base = alt.Chart(data).encode(x=x, y=y)
    dots = base.mark_circle(size=140, color=color, opacity=1).encode(
        tooltip=["label:N", alt.Tooltip("score:Q", format=".3f")]
    )
    values = base.mark_text(align="left", dx=9, fontSize=12, color="#333").encode(
        text=alt.Text("score:Q", format=".2f")
    )
    return alt.layer(dots, values).properties(height=max(160, 30 * len(top)))
