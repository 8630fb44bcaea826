"""Lists the back row can read (22 px): the presenter's labelled A and B lists with
▲/▼, and the blind test's unlabelled left/right lists (title and the start of the text
the reranker read)."""

from __future__ import annotations

import re

import streamlit as st

from core.present.room import DOWN, UP, move_mark
from core.present.views import escape_markdown
from core.quality.headtohead import HeadToHead

BIG_LISTS_CSS = """<style>
[class*="st-key-biglist"] p, [class*="st-key-biglist"] li { font-size: 22px !important;
  line-height: 1.45 !important; }
[class*="st-key-biglist"] h3 { font-size: 28px !important; }
[class*="st-key-biglist"] .stCaption p, [class*="st-key-biglist"] small {
  font-size: 18px !important; }
</style>"""
SNIPPET_CHARS = 160


def big_lists_style() -> None:
    """Lists in containers keyed ``biglist*`` are read from the back row (22 px)."""
    st.html(BIG_LISTS_CSS)


def show_large(h2h: HeadToHead) -> None:
    """The presenter's view: both top-N as large numbered lists, labelled A and B, each
    item with ▲/▼ against the other side's rank."""
    big_lists_style()
    left, right = st.columns(2)
    ranks = {"A": h2h.b.ranks, "B": h2h.a.ranks}
    for col, name, side in ((left, "A", h2h.a), (right, "B", h2h.b)):
        with col, st.container(key=f"biglist_{name}"):
            st.markdown(f"### {name} · {escape_markdown(side.spec.label)}")
            lines = []
            for c in side.result.top_final:
                score = side.score(c)
                tail = f" · {side.score_label} {score:.2f}" if score is not None else ""
                other = ranks[name][c.id] - c.final_rank
                mark = f" {move_mark(other)}" if name == "B" else ""
                lines.append(f"{c.final_rank}. **{escape_markdown(c.title)}**{mark}{tail}")
            st.markdown("\n".join(lines))
            if name == "B":
                st.caption(f"{UP}/{DOWN}: B ranks the item higher/lower than A does.")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a text, cut at a word, on one line."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + "…"


def item_text(h2h: HeadToHead, candidate) -> str:
    """What the voter should judge besides the title: the text the reranker read (from
    either side: a side without a reranker read nothing), else the record's other text
    fields; the leading ``title: <title>`` label is dropped."""
    texts = {c.id: c.rerank_text for c in (*h2h.a.result.candidates, *h2h.b.result.candidates)}
    text = texts.get(candidate.id) or candidate.rerank_text or ""
    if not text:
        text = " ".join(
            v for v in candidate.record.values() if isinstance(v, str) and v != candidate.title
        )
    for prefix in (f"title: {candidate.title}", candidate.title):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return re.sub(r"^\s*\w+:\s", "", text.strip())  # a field label such as "overview: "


def show_blind(h2h: HeadToHead, a_left: bool, revealed: bool = False) -> None:
    """Both top-N unlabelled, A on the left when ``a_left`` (the room's stored side),
    named once ``revealed``; each item is its title and the start of the text the
    reranker read, so people vote on content, not titles."""
    big_lists_style()
    sides = (h2h.a, h2h.b) if a_left else (h2h.b, h2h.a)
    names = ("A", "B") if a_left else ("B", "A")
    left, right = st.columns(2)
    for col, name, side, which in (
        (left, "Left list", sides[0], names[0]),
        (right, "Right list", sides[1], names[1]),
    ):
        with col, st.container(key=f"biglist_blind_{name[0]}"):
            label = f" — {which} · {escape_markdown(side.spec.label)}" if revealed else ""
            st.markdown(f"### {name}{label}")
            st.markdown(
                "\n".join(
                    f"{i}. **{escape_markdown(c.title)}** — "
                    f"{escape_markdown(snippet(item_text(h2h, c)))}"
                    for i, c in enumerate(side.result.top_final, start=1)
                )
            )
