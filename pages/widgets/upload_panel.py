"""The sidebar's upload box and the data-quality report of an uploaded dataset."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd
import streamlit as st

from core.data.upload_quality import QualityReport, build_upload_dataset
from core.data.uploads import UPLOAD_MB, max_upload_bytes, max_upload_records, parse_upload
from core.models.errors import CoreError
from core.present.views import escape_markdown
from pages.widgets.common import get_upload_store

UPLOAD_TYPES = ["json", "jsonl", "ndjson", "csv", "tsv"]
log = logging.getLogger(__name__)


def upload_box() -> str | None:
    """Offer a file upload; return the new dataset's id once a file is accepted.

    A bad file gets one line of explanation and changes nothing: the dataset that was
    loaded stays selected. Each file is processed once, not on every rerun.
    """
    state = st.session_state
    # A constant ``expanded`` keeps the expander's identity, so it stays as the user left
    # it; errors are shown below it, where a collapsed expander cannot hide them.
    with st.sidebar.expander("Upload your own data"):
        st.caption(
            "A JSON array of objects, a JSON object holding one, JSON Lines, or CSV. "
            f"Up to {max_upload_bytes() / UPLOAD_MB:g} MB ({max_upload_bytes():,} bytes) and "
            f"{max_upload_records():,} records."
        )
        file = st.file_uploader("Dataset file", type=UPLOAD_TYPES, key="upload_file")
        if file is None:
            return None
        data = file.getvalue()
        # One outcome per drop of a file (a new drop of the same bytes is a new file_id,
        # so re-uploading selects the dataset again).
        digest = f"{file.file_id}:{hashlib.sha256(data).hexdigest()}"
        seen = state.setdefault("upload_seen", {})
        if digest in seen:
            outcome = seen[digest]
            if outcome.startswith("error:"):
                _upload_error(outcome.removeprefix("error:"))
            return None
        try:
            parsed = parse_upload(data, file.name)
            build_upload_dataset(parsed)  # validates ids and text before storing
            dataset_id = get_upload_store().put(data, file.name)
        except CoreError as exc:
            seen[digest] = f"error:{exc}"
            _upload_error(str(exc))
            return None
        except Exception as exc:  # any failure leaves the session as it was
            log.exception("upload %r failed", file.name)
            message = f"could not read {file.name}: unexpected {type(exc).__name__}"
            seen[digest] = f"error:{message}"
            _upload_error(message)
            return None
        seen[digest] = dataset_id
        return dataset_id


def _upload_error(message: str) -> None:
    st.sidebar.error(escape_markdown(message), icon="🚫")


def quality_report(report: QualityReport, *, expanded: bool) -> None:
    """Show an upload's data-quality report: counts, notes, and a per-field table."""
    with st.expander(f"Data quality: {escape_markdown(report.filename)}", expanded=expanded):
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Records", f"{report.records:,}")
        c2.metric("Searchable", f"{report.kept:,}", help="Records with text to embed.")
        c3.metric("Dropped (no text)", f"{report.dropped:,}")
        c4.metric(
            "Truncated by reranker",
            f"{report.rerank_over_reranker:,}",
            help=f"Records whose rerank text exceeds about {report.reranker_max_tokens} "
            "tokens (estimated as characters / 4).",
        )
        for note in report.notes():
            st.warning(escape_markdown(note), icon="⚠️")
        st.dataframe(pd.DataFrame(report.to_rows()), hide_index=True)
