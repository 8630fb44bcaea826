"""The Evaluate page's "A vs B" panel: two second stages on the same candidates of every
judged query, the paired interval, a plain verdict, wins/ties/losses, the queries where
they disagree most, and the HTML report. Drawn by pages/evaluate.py in one call."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.models.errors import CoreError
from core.present.evaluate_state import LabelledSet
from core.present.report import pair_report_html
from core.present.views import error_text, escape_markdown
from core.quality.evaluation_pair import evaluate_pair
from core.quality.evaluation_report import PRIMARY_METRIC
from core.search.scorestore import ScoreStore
from pages.widgets.actions import action_button, running_action
from pages.widgets.common import get_encoder, reranker_for, stage_progress, together_api_key
from pages.widgets.spec_picker import seed_picker, spec_picker

VERDICT_BOX = {"B better": st.success, "A better": st.success}


def pair_panel(labelled: LabelledSet, *, retriever: str, encoder_id: str, candidates: int) -> None:
    """Pick A and B, run both on the same candidates, show the comparison."""
    state = st.session_state
    with st.expander("A vs B: compare two second stages on these judgments", expanded=False):
        if "pa_choice" not in state:
            from core.quality.headtohead import RerankSpec, parse_spec

            seed_picker("pa", RerankSpec())
            seed_picker("pb", parse_spec("local@0.5"))
        c1, c2 = st.columns(2)
        a = spec_picker("pa", "A", c1)
        b = spec_picker("pb", "B", c2)
        run_key = (
            labelled.source,
            labelled.dataset.content_hash,
            labelled.labels_key,
            labelled.max_queries,
            retriever,
            encoder_id,
            candidates,
            a,
            b,
        )
        if action_button("Compare A and B", "pair_run", type="primary"):
            with running_action("pair_run"):
                report = _compare(labelled, a, b, retriever, encoder_id, candidates)
                if report is None:
                    return
                state.pair_report = (run_key, report)
        stored = state.get("pair_report")
        if stored is None or stored[0] != run_key:
            st.caption("Pick A and B, then press **Compare A and B**.")
            return
        report = stored[1]
        c = report.comparison
        m1, m2, m3, m4 = st.columns(4)
        m1.metric(
            "nDCG@10: A → B",
            f"{report.mean_a[PRIMARY_METRIC]:.3f} → {report.mean_b[PRIMARY_METRIC]:.3f}",
            delta=f"{c.mean_delta:+.3f}",
        )
        m2.metric("95% CI of B − A", f"{c.low:+.3f} to {c.high:+.3f}")
        m3.metric("A wins / ties / B wins", f"{c.losses} / {c.ties} / {c.wins}")
        m4.metric("Time A / B", f"{report.a_seconds:.1f} s / {report.b_seconds:.1f} s")
        VERDICT_BOX.get(report.verdict, st.info)(escape_markdown(report.sentence()))
        st.markdown("**Where A and B disagree most**")
        st.dataframe(
            pd.DataFrame([q.row() for q in report.disagreements(5)]),
            hide_index=True,
            key="pair_disagree",
        )
        with st.popover("Every query"):
            st.dataframe(pd.DataFrame(report.rows()), hide_index=True, key="pair_rows")
        d1, d2 = st.columns(2)
        d1.download_button(
            "Export A vs B report (HTML)",
            pair_report_html(report),
            "a-vs-b.html",
            "text/html",
            on_click="ignore",
        )
        d2.download_button(
            "Per-query A vs B (CSV)",
            report.per_query_csv(),
            "a-vs-b.csv",
            "text/csv",
            on_click="ignore",
        )


def _compare(labelled: LabelledSet, a, b, retriever: str, encoder_id: str, candidates: int):
    """Run A and B on the same candidates with a progress bar; None (error shown) on a
    :class:`CoreError`."""
    bar, progress = stage_progress()
    try:
        api_key = together_api_key()
        models = {s.reranker: reranker_for(s.reranker, api_key) for s in (a, b) if not s.is_none}
        return evaluate_pair(
            labelled.dataset,
            labelled.queries,
            labelled.qrels,
            a=a,
            b=b,
            reranker_a=models.get(a.reranker),
            reranker_b=models.get(b.reranker),
            encoder=get_encoder(encoder_id) if retriever != "bm25" else None,
            retriever=retriever,
            candidates=candidates,
            embed_fields=labelled.embed_fields,
            rerank_fields=labelled.rerank_fields,
            rerank_style=labelled.rerank_style,  # type: ignore[arg-type]
            max_queries=labelled.max_queries,
            ignore_identical_ids=labelled.ignore_identical_ids,
            store=ScoreStore(),
            progress=progress,
        )
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
        return None
    finally:
        bar.empty()
