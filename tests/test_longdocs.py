"""The buried-plot check on a few movie queries, with the real packaged models: every
overview gets the same neutral filler in front, so the plot starts past token 512.
Reading by best passage recovers the original top 10; reading the first passage does
not. (The full figure: ``python -m core bench --long-docs 5``.)"""

from __future__ import annotations

import pytest

from core.models.cross_encoders import reranker_tokenizer
from core.quality.longdocs import (
    format_long_doc_check,
    long_doc_check,
    neutral_filler,
    with_filler,
)

QUERIES = ("astronauts stranded far from earth", "a toy that comes to life")


def test_filler_pushes_the_plot_past_the_first_window(movies) -> None:
    tok = reranker_tokenizer(None)
    filler = neutral_filler(540, tok)
    long = with_filler(movies, "overview", filler)
    assert long.ids == movies.ids
    record = long.record(movies.ids[0])
    assert record["overview"].endswith(movies.records[0]["overview"])
    assert len(tok.encode(filler, add_special_tokens=False).ids) >= 540 > 512


@pytest.mark.slow
def test_best_passage_recovers_the_top_10_first_passage_does_not(
    movies, minilm, cross_encoder
) -> None:
    rows = long_doc_check(
        movies, QUERIES, encoder=minilm, reranker=cross_encoder, candidates=30, k=10
    )
    print(format_long_doc_check(rows))
    first = sum(r.overlap("first") for r in rows)
    best = sum(r.overlap("max, window fit, stride half") for r in rows)
    assert best >= 7 * len(rows)  # most of the original top 10 comes back
    assert best >= first + 2 * len(rows)  # ...and clearly more than the first passage
