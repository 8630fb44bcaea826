"""Exports that carry their manifest: an evaluation as JSON or a standalone HTML file, and
the head-to-head's HTML report with a "Reproducibility" section.

Every value that came from outside (dataset labels, queries, file names) is escaped in
HTML (:func:`core.present.report.e`); JSON is written by :mod:`json`.
"""

from __future__ import annotations

import json
from typing import Any

from core.present.manifest import Manifest
from core.present.report import document, e, head_to_head_report, manifest_section
from core.present.tables import evaluation_stages, evaluation_timings, headline_figures
from core.quality.evaluation_report import EvaluationReport
from core.quality.headtohead import HeadToHead

FOOTER = "<footer>"


def with_manifest(html: str, manifest: Manifest | None) -> str:
    """A standalone report (from :func:`core.present.report.document`) with the
    manifest's section added before its footer. Every outside value in the report is
    escaped, so its first ``<footer>`` is the report's own."""
    if manifest is None or FOOTER not in html:
        return html
    return html.replace(FOOTER, manifest_section(manifest) + FOOTER, 1)


def head_to_head_html(h2h: HeadToHead, note: str = "", manifest: Manifest | None = None) -> str:
    """The head-to-head report (:func:`core.present.report.head_to_head_report`) with
    what it was computed from: the data's, the encoder's, A's and B's file hashes."""
    return with_manifest(head_to_head_report(h2h, note), manifest)


def evaluation_json(report: EvaluationReport, manifest: Manifest | None) -> str:
    """The evaluation as JSON (settings, means, the paired comparison, every query with
    its rankings) and, under ``manifest``, what it was computed from."""
    data: dict[str, Any] = report.to_dict(with_rankings=True)
    if manifest is not None:
        data["manifest"] = manifest.to_dict()
    return json.dumps(data, indent=1, ensure_ascii=False)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def evaluation_html(report: EvaluationReport, manifest: Manifest | None) -> str:
    """The evaluation as one standalone HTML file: settings, headline metrics, the
    verdict, per-query rows and the manifest."""
    s = report.settings
    figures = "".join(
        f"<tr><td>{e(label)}</td><td class='num'>{e(value)}</td>"
        f"<td class='num'>{e(delta or '')}</td></tr>"
        for label, value, delta in headline_figures(report)
    )
    body = (
        "<section><h2>Settings</h2>"
        f"<p>{e(evaluation_stages(report))}</p>"
        f"<p>{e(s.num_queries)} queries of {e(s.total_queries)}, {e(s.candidates)} candidates "
        f"each, over {e(s.corpus_size)} records. {e(s.scale_note)}.</p>"
        f"<p>{e(evaluation_timings(report))}</p></section>"
        "<section><h2>Metrics</h2><table><thead><tr><th>metric</th>"
        "<th class='num'>value</th><th class='num'>change</th></tr></thead>"
        f"<tbody>{figures}</tbody></table>"
    )
    comparison = report.comparison
    if comparison is not None:
        body += f"<p>{e(comparison.sentence(report.second_stage_label))}</p>"
    rows = report.rows()
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    cells = "".join(
        "<tr>" + "".join(f"<td>{e(_cell(r[c]))}</td>" for c in columns) + "</tr>" for r in rows
    )
    body += (
        "</section><section><h2>Per query</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table></section>"
    )
    if manifest is not None:
        body += manifest_section(manifest)
    return document(f"Evaluation: {s.dataset}", body, evaluation_stages(report))
