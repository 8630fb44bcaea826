"""bench-background's table and options: a projected dense-ready time is marked and
said to be projected; every size can be projected, or built in full."""

from __future__ import annotations

import argparse

from core.bench.background import format_rows, synthetic_movies
from core.cli import background as cli

ROW = {
    "records": 100_000,
    "first_results_s": 9.1,
    "bm25_build_s": 3.2,
    "dense_ready": "projected",
    "dense_ready_s": 2400.0,
    "pure_encode_s": 2300.0,
    "docs_per_s": 41.7,
    "pure_encode_docs_per_s": 43.5,
    "dense_vs_pure": 1.043,
    "chunks": 98,
    "chunks_encoded": 3,
    "search_during_p50_ms": 900,
    "search_idle_p50_ms": 600,
}


def test_a_projected_row_is_marked_and_explained() -> None:
    table = format_rows([ROW, {**ROW, "records": 10_000, "dense_ready": "measured"}])
    lines = table.splitlines()
    assert "~2400.0" in lines[1] and "3/98" in lines[1]
    assert "~" not in lines[2].split(" | ")[3]
    assert "PROJECTED, not measured" in lines[-1]
    assert "PROJECTED" not in format_rows([{**ROW, "dense_ready": "measured"}])


def test_options_reach_the_bench(monkeypatch) -> None:
    seen = {}

    def fake_bench(sizes, **options):
        seen.update(options, sizes=sizes)
        return [ROW]

    monkeypatch.setattr("core.bench.background.bench_background", fake_bench)
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    options = "--sizes 50000 --full-dense-max 0 --project-chunks 2 --chunk 256 --pure-sample 100"
    args = parser.parse_args(["bench-background", *options.split()])
    assert args.run(args) == 0
    assert seen["sizes"] == [50_000] and seen["full_dense_max"] == 0
    assert seen["project_chunks"] == 2 and seen["chunk"] == 256 and seen["pure_sample"] == 100
    args = parser.parse_args(["bench-background", "--full-dense-max", "-1"])
    args.run(args)
    assert seen["full_dense_max"] is None  # every size built in full


def test_synthetic_records_are_movie_length_and_deterministic() -> None:
    a, b = synthetic_movies(3, seed=4), synthetic_movies(3, seed=4)
    assert a == b
    assert all(40 <= len(r["overview"].split()) <= 60 for r in a)
