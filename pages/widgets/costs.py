"""Costs asked before they are spent (core.search.budget on a page): work a link or a
file can start shows its estimate and waits for a click above the threshold, and a
visitor's hourly budget refuses beyond it with one line."""

from __future__ import annotations

import streamlit as st

from core.present.views import escape_markdown
from core.search.budget import Cost, VisitorBudget


def visitor_budget() -> VisitorBudget:
    """This visitor's budget (kept in the session)."""
    return st.session_state.setdefault("visitor_budget", VisitorBudget())


def _confirm(key: str) -> None:
    st.session_state[f"cost_ok_{key}"] = True


def may_run(cost: Cost, key: str) -> bool:
    """True when the work priced by ``cost`` may start now (and charge it to the
    visitor); else the page shows why (a refusal, or the estimate and a button) and
    the caller stops. ``key`` names the work, so a click confirms this work only."""
    if cost.seconds <= 0:
        return True
    budget = visitor_budget()
    refusal = budget.refusal(cost)
    if refusal is not None:
        st.error(escape_markdown(refusal), icon="⏳")
        return False
    confirmed = st.session_state.pop(f"cost_ok_{key}", False)
    if cost.needs_click and not confirmed:
        st.info(escape_markdown(cost.line() + ". It starts when you click."), icon="⏱️")
        st.button("Run it", key=f"cost_run_{key}", on_click=_confirm, args=(key,))
        return False
    budget.charge(cost)
    return True
