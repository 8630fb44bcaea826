"""Paired bootstrap intervals and their verdicts."""

from __future__ import annotations

import pytest

from core.quality.stats import mean_interval, paired_bootstrap


def test_identical_runs_tie_everywhere() -> None:
    c = paired_bootstrap([0.5, 0.2, 0.9], [0.5, 0.2, 0.9], resamples=500)
    assert (c.mean_delta, c.low, c.high) == (0.0, 0.0, 0.0)
    assert (c.wins, c.ties, c.losses) == (0, 3, 0)
    assert c.verdict == "within noise"


def test_a_uniform_gain_is_better_and_a_uniform_loss_worse() -> None:
    better = paired_bootstrap([0.0] * 20, [0.1] * 20, resamples=500)
    assert better.mean_delta == pytest.approx(0.1)
    assert better.low == pytest.approx(0.1) and better.high == pytest.approx(0.1)
    assert better.verdict == "better" and better.wins == 20
    worse = paired_bootstrap([0.6] * 20, [0.5] * 20, resamples=500)
    assert worse.verdict == "worse" and worse.losses == 20
    assert "hurts" in worse.sentence() and "first stage" in worse.sentence()
    other = worse.sentence("Reading by max", keep="reading by first")
    assert other.startswith("Reading by max hurts") and "first stage" not in other
    assert other.endswith("Keep reading by first here.")


def test_one_win_among_many_ties_is_within_noise() -> None:
    base = [0.0] * 10
    other = [1.0] + [0.0] * 9
    c = paired_bootstrap(base, other, resamples=2000)
    assert c.mean_delta == pytest.approx(0.1)
    assert c.low == 0.0 and 0.1 < c.high <= 0.5
    assert c.verdict == "within noise"
    assert "within noise" in c.sentence() and "includes 0" in c.sentence()


def test_same_seed_same_interval_and_paired_resampling() -> None:
    base = [0.1, 0.4, 0.35, 0.8, 0.2, 0.6]
    other = [0.3, 0.5, 0.30, 0.9, 0.4, 0.7]
    one = paired_bootstrap(base, other, resamples=3000, seed=7)
    two = paired_bootstrap(base, other, resamples=3000, seed=7)
    assert one == two
    # Paired: every resample's mean delta lies between the smallest and largest delta.
    assert -0.05 - 1e-12 <= one.low <= one.mean_delta <= one.high <= 0.2 + 1e-12
    assert one.to_dict()["verdict"] == one.verdict


def test_lengths_must_match_and_empty_is_safe() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])
    empty = paired_bootstrap([], [])
    assert empty.num_queries == 0 and empty.verdict == "within noise"


def test_mean_interval_brackets_the_mean() -> None:
    mean, low, high = mean_interval([0.2, 0.4, 0.6, 0.8], resamples=2000)
    assert mean == pytest.approx(0.5)
    assert 0.2 <= low < mean < high <= 0.8
