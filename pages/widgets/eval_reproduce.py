"""The Evaluate page's exports and "Reproducibility" section: the evaluation as JSON and
HTML (both with the manifest), what it was computed from, and "Reproduce in Python" (a
script using core.api that recomputes the shown numbers). Texts and files come from
core.present (tested without Streamlit).

Functions only: nothing here draws on import.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from core.data.upload_store import is_upload_id
from core.models.errors import CoreError
from core.present.evaluate_state import LabelledSet, evaluation_manifest_of, evaluation_script
from core.present.exports import evaluation_html, evaluation_json
from core.present.manifest import Manifest
from core.quality.evaluation_report import EvaluationReport
from pages.widgets.reproduce_panel import manifest_download


def run_manifest(
    key: Hashable,
    labelled: LabelledSet,
    options: Mapping[str, Any],
    *,
    name: str,
    label: str,
) -> Manifest | None:
    """The manifest of the run ``key`` names, made once per run (kept in the session);
    None when it cannot be made here. ``label``: the dataset as the picker shows it (an
    upload's is its file name)."""
    if is_upload_id(name):
        label = label.rsplit(" (", 1)[0]
    state = st.session_state
    stored = state.get("eval_manifest")
    if stored is None or stored[0] != key:
        try:
            manifest = evaluation_manifest_of(labelled, options, name=name, label=label)
        except (CoreError, OSError):
            manifest = None
        state.eval_manifest = stored = (key, manifest)
    return stored[1]


def exports(report: EvaluationReport, manifest: Manifest | None) -> None:
    """The evaluation as JSON and as one HTML file, each carrying the manifest."""
    row = st.container(horizontal=True)
    row.download_button(
        "Export evaluation (JSON)",
        evaluation_json(report, manifest),
        "evaluation.json",
        "application/json",
        on_click="ignore",
        help="Settings, means, the paired comparison, every query with both rankings, "
        "and the manifest (what the numbers were computed from).",
    )
    row.download_button(
        "Export report (HTML)",
        evaluation_html(report, manifest),
        "evaluation.html",
        "text/html",
        on_click="ignore",
        key="eval_report_html",
        help="One self-contained file: settings, metrics, the verdict, per-query rows and "
        "the manifest. Opens offline and prints well.",
    )


def panel(manifest: Manifest | None, labelled: LabelledSet, beir_folder: str | Path | None) -> None:
    """The Reproducibility expander: the manifest, "Reproduce in Python" and its JSON."""
    if manifest is None:
        return
    with st.expander("Reproducibility"):
        st.caption(
            "What these numbers were computed from: the data's sha256 (every id and "
            "record), the judgments' sha256, each model file's sha256 with its runtime and "
            "max length, the settings, the package versions and the bootstrap's seed "
            f"(fingerprint {manifest.fingerprint})."
        )
        settings = json.dumps(manifest.settings, ensure_ascii=False)
        st.code(
            "\n".join([*manifest.lines(), f"settings: {settings}"]),
            language=None,
            wrap_lines=True,
        )
        row = st.container(horizontal=True)
        row.download_button(
            "Reproduce in Python",
            evaluation_script(labelled, manifest, beir_folder=beir_folder),
            "reproduce_evaluation.py",
            "text/x-python",
            on_click="ignore",
            key="eval_reproduce_py",
            help="A short script using core's public API (core.api.evaluate): run from a "
            "checkout of the workbench, it prints the same metrics and rankings as JSON.",
        )
        manifest_download(row, manifest, key="eval_manifest_json")
