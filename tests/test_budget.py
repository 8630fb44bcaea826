"""Costs asked before they are spent (issue 29, case 6): core.search.budget, the
Evaluate page's budget and judgments cap, and the recall ceiling's click."""

from __future__ import annotations

import pytest

from core.data.beir import check_uploaded_judgments, read_judgments
from core.models.errors import DatasetError
from core.search.budget import Cost, VisitorBudget, budget_seconds, confirm_seconds
from tests.test_app_diagnostics import (  # noqa: F401 (fixtures)
    fake_order,
    fakes,
    metrics,
    open_page,
    sample,
)
from tests.test_app_evaluate import SAMPLE_BATS, _evaluate_page, _run_button, assert_no_exception


def test_the_threshold_and_the_budget_read_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("RERANK_CONFIRM_SECONDS", raising=False)  # conftest raises it
    assert confirm_seconds() == 60 and budget_seconds() == 30 * 60
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "5")
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "2")
    assert confirm_seconds() == 5 and budget_seconds() == 120
    assert Cost(6, "x").needs_click and not Cost(5, "x").needs_click
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "lots")
    assert budget_seconds() == 30 * 60


def test_a_visitor_budget_refuses_past_its_hour_and_frees_after_it(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "10")
    budget = VisitorBudget()
    work = Cost(300, "Reranking all 1,000 records")
    assert budget.refusal(work, now=0) is None
    budget.charge(work, now=0)
    budget.charge(work, now=10)
    refusal = budget.refusal(work, now=20)
    assert refusal and "limit 10.0 min" in refusal and "try again in 59.7 min" in refusal
    assert budget.refusal(work, now=3601) is None  # the first charge left the hour
    too_big = budget.refusal(Cost(3600, "Find the best setting"), now=0)
    assert too_big and "ask the operator" in too_big
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0")
    assert budget.refusal(Cost(10**9, "anything"), now=20) is None


def test_an_uploaded_judgments_file_over_the_cap_is_one_error(monkeypatch) -> None:
    rows = "".join(f"q{i % 50},d{i},1\n" for i in range(200))
    found = read_judgments(("query,doc_id,rating\n" + rows).encode())
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "100")
    with pytest.raises(DatasetError, match="200 ratings; at most 100"):
        check_uploaded_judgments(found, "big.csv")
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "500")
    assert check_uploaded_judgments(found, "big.csv") is found


def test_the_evaluate_page_refuses_a_run_past_the_visitor_budget(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0.0001")
    csv = f"query,doc_id,rating\n{SAMPLE_BATS},s15,3\n{SAMPLE_BATS},s33,2\n".encode()
    at = _evaluate_page(csv=csv)
    assert_no_exception(at)
    assert _run_button(at).disabled
    assert any("RERANK_VISITOR_BUDGET_MIN" in w.value.replace("\\", "") for w in at.warning)


def test_the_evaluate_page_refuses_too_many_uploaded_ratings(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_MAX_JUDGMENTS", "1")
    csv = f"query,doc_id,rating\n{SAMPLE_BATS},s15,3\n{SAMPLE_BATS},s33,2\n".encode()
    at = _evaluate_page(csv=csv)
    assert_no_exception(at)
    assert any("2 ratings; at most 1 " in e.value.replace("\\", "") for e in at.error), [
        e.value for e in at.error
    ]
    assert not [b for b in at.button if b.label == "Run evaluation"]


@pytest.mark.usefixtures("fakes", "fake_order", "sample")
def test_the_recall_ceiling_waits_for_a_click_above_the_threshold(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))  # nothing scored yet
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0")
    at = open_page(dataset="sample", query=SAMPLE_BATS, candidates=10, results=3)
    assert_no_exception(at)
    assert not at.metric
    assert any("Reranking all 40 records" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Run it").click().run()
    assert_no_exception(at)
    assert metrics(at)["Ideal top-3 reached with 10"] == "1 / 3"
    monkeypatch.setenv("RERANK_VISITOR_BUDGET_MIN", "0.000001")
    at.text_input(key="diag_query").input(SAMPLE_BATS + " again").run()
    assert any("RERANK_VISITOR_BUDGET_MIN" in e.value.replace("\\", "") for e in at.error)
