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
from core.search.passages import PassageSettings

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
    # 128-token windows: the window holding the plot is mostly plot (with the default
    # window, filling all 512 tokens, it is mostly filler: see the README's figure)
    small = PassageSettings("max", window=128, stride=64, max_per_doc=16)
    rows = long_doc_check(
        movies,
        QUERIES,
        encoder=minilm,
        reranker=cross_encoder,
        candidates=50,
        k=10,
        settings=(PassageSettings("first"), small),
    )
    print(format_long_doc_check(rows))
    for row in rows:
        assert row.overlap(small.label()) >= 8  # the original top 10 comes back...
        assert row.overlap(small.label()) >= row.overlap("first") + 4  # ...first does not
