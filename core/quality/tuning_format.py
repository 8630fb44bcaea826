"""Plain-text tables of tuning results, for the command line."""

from __future__ import annotations

from collections.abc import Sequence

from core.quality.tuning import RuleComparison, TuneReport
from core.quality.tuning_cost import CostPoint
from core.quality.tuning_grid import PASSAGE_LABELS, FirstStage
from core.quality.tuning_rules import RULES
from core.quality.tuning_workbench import ConfigResult


def format_rule_comparison(cmp: RuleComparison) -> str:
    """The comparison as text: per rule the mean held-out nDCG@10 and folds agreeing,
    then every run, then the first stages alone for reference."""
    seeds = sorted({r.seed for r in cmp.runs})
    folds = sorted({r.folds for r in cmp.runs})
    lines = [
        f"selection rules on {cmp.dataset}: {cmp.num_queries} queries, folds "
        f"{', '.join(map(str, folds))} x seeds {', '.join(map(str, seeds))} "
        "(held-out nDCG@10: each query scored by the setting chosen without it)",
    ]
    if cmp.note:
        lines.append(f"note: {cmp.note}")
    header = f"{'rule':<13}{'held-out nDCG@10':>18}{'min':>8}{'max':>8}{'folds agreeing':>17}"
    lines += ["", header, "-" * len(header)]
    for row in cmp.summary():
        lines.append(
            f"{row['rule']:<13}{row['mean_heldout_ndcg@10']:>18.4f}{row['min']:>8.4f}"
            f"{row['max']:>8.4f}{row['folds_agreeing']:>10} of {row['folds_total']:<4}"
        )
    lines += ["", f"best held-out: {cmp.winner()}", "", "per run:"]
    for r in cmp.runs:
        lines.append(
            f"  {r.rule:<12} k={r.folds:<3} seed {r.seed}: {r.heldout:.4f}  "
            f"{r.agreement:>2}/{r.folds:<3} folds agree  reranked {r.reranked_share:4.0%} of "
            f"queries  -> {r.recommended.label}"
        )
    lines += ["", "first stages alone (no choice made, so no held-out optimism):"]
    for label, value in cmp.alone.items():
        lines.append(f"  {label:<52}{value:.4f}")
    return "\n".join(lines)


def format_results(results: Sequence[ConfigResult], title: str = "") -> str:
    """A plain-text table: one row per setting, metrics and change vs its first stage."""
    header = (
        f"{'setting':<52}{'nDCG@10':>9}{'MRR@10':>9}{'R@100':>8}"
        f"   {'vs first stage alone (nDCG@10, 95% CI)':<44}"
    )
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    for r in results:
        change = ""
        if r.vs_first_stage is not None:
            c = r.vs_first_stage
            change = (
                f"{c.mean_delta:+.4f} [{c.low:+.4f}, {c.high:+.4f}] {c.verdict}"
                f"  {c.wins}/{c.ties}/{c.losses}"
            )
        lines.append(
            f"{r.config.label:<52}{r.means['ndcg@10']:>9.4f}{r.means['mrr@10']:>9.4f}"
            f"{r.means['recall@100']:>8.4f}   {change}"
        )
    return "\n".join(lines)


def format_tune(report: TuneReport) -> str:
    """The recommendation, its held-out figures and stability, each fold's choice, per
    first stage the best settings (in-sample), and quality against cost."""
    rec = report.recommended
    cmp = report.heldout_vs_baseline
    lines = [
        f"tuned on {report.dataset}: {report.num_queries} queries, {report.folds}-fold "
        f"cross-validation (seed {report.seed}), {len(report.grid)} settings, "
        f"reranker {report.reranker or 'none'}",
        f"rule: {report.rule}: {RULES[report.rule]}",
    ]
    if report.note:
        lines.append(f"note: {report.note}")
    if report.aggregates:
        lines.append(
            "passage reading tuned: "
            + " vs ".join(PASSAGE_LABELS.get(a, a) for a in report.aggregates)
            + f" ({report.split_docs:,} candidates, summed over queries, have more than one"
            " passage; reading by passage scores every one: see the cost table)"
        )
    lines += [
        "",
        f"recommended: {rec.config.label}",
        f"  held-out (each query scored by the setting chosen without it): "
        f"nDCG@10 {report.heldout['ndcg@10']:.4f} "
        f"[95% CI {report.heldout_ci[0]:.4f}, {report.heldout_ci[1]:.4f}], "
        f"MRR@10 {report.heldout['mrr@10']:.4f}, Recall@100 {report.heldout['recall@100']:.4f}",
        f"  chosen by {report.agreement} of {report.folds} folds",
        f"  plain first stage {report.baseline.config.label}: nDCG@10 "
        f"{report.baseline.means['ndcg@10']:.4f} (nothing chosen, so this is held-out too)",
    ]
    if report.alone_heldout is not None:
        lines.append(
            f"  best first stage alone, chosen by the same folds: held-out nDCG@10 "
            f"{report.alone_heldout:.4f} ({report.alone_agreement} of {report.folds} folds agree)"
        )
    lines += [
        "  vs the plain first stage: " + cmp.sentence("The tuned setting"),
        f"  in-sample (all queries, for reference only): nDCG@10 {rec.means['ndcg@10']:.4f}",
        "",
        "folds:",
    ]
    for c in report.choices:
        lines.append(
            f"  {c.fold}: {c.chosen.label:<52} train {c.train_ndcg:.4f}  "
            f"held-out {c.heldout_ndcg:.4f} ({c.num_queries} queries)"
        )
    lines += ["", format_results(report.best_per_stage(), "best per first stage (in-sample):")]
    if report.costs:
        lines += ["", format_costs(report)]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines += [
        "",
        f"time: {timing}; cross-encoder pairs: {report.pairs_scored:,} scored, "
        f"{report.pairs_cached:,} from cache",
    ]
    return "\n".join(lines)


def format_costs(report: TuneReport) -> str:
    """Quality against cost as text: for each first stage and rerank depth, the best
    weight's nDCG@10 with its interval and the measured ms per query; then the cheapest
    setting within noise of the best."""
    best, cheapest = report.best_cost, report.cheapest
    sample = report.rerank_sample
    lines = [
        "quality against cost (nDCG@10 on all queries with 95% CI; ms per query measured "
        f"here: first stage over all queries, cross-encoder on {sample or 'no'} queries "
        "per depth; fusion weights at one depth cost the same, the best is shown):",
        f"{'setting':<52}{'nDCG@10':>9}{'95% CI':>18}{'ms/query':>10}  within noise of best",
    ]
    groups: dict[tuple[FirstStage, int, str | None], list[CostPoint]] = {}
    for p in report.costs:
        groups.setdefault((p.config.stage, p.config.depth, p.config.passages), []).append(p)
    for points in groups.values():
        p = max(points, key=lambda q: q.ndcg)
        ms = f"{p.ms:>10.1f}" if p.ms is not None else f"{'-':>10}"
        mark = "best" if p is best else ("yes" if p.within_noise else "no")
        weights = f" ({len(points)} weights)" if len(points) > 1 else ""
        lines.append(
            f"{p.config.label + weights:<52}{p.ndcg:>9.4f}  [{p.low:.4f}, {p.high:.4f}]{ms}  {mark}"
        )
    if best is not None:
        lines.append(f"best: {best.config.label} (nDCG@10 {best.ndcg:.4f})")
    if cheapest is not None:
        lines.append(
            f"cheapest within noise of the best: {cheapest.config.label}, nDCG@10 "
            f"{cheapest.ndcg:.4f} ({cheapest.vs_best:+.4f} vs best), {cheapest.ms:.1f} ms/query"
            + (f" vs {best.ms:.1f} ms for the best" if best and best.ms is not None else "")
        )
    else:
        lines.append("cheapest within noise of the best: not measured (no timings)")
    return "\n".join(lines)
