"""The CLI against hostile input (issue 29, case 5): one ``error:`` line, exit 2, no
traceback, and a refused build leaves no unfinished collection behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main

DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def deep_files(tmp_path: Path) -> dict[str, Path]:
    files = {"json": tmp_path / "deep.json", "jsonl": tmp_path / "deep.jsonl"}
    files["json"].write_text(DEEP)
    files["jsonl"].write_text('{"a": ' + DEEP + "}\n")
    return files


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_search_on_a_deep_file_is_one_error(deep_files, kind, capsys) -> None:
    code = main(["search", "x", "--dataset", str(deep_files[kind]), "--no-rerank"])
    assert code == 2
    assert "too deeply" in one_error(capsys)


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_collection_build_of_a_deep_file_is_one_error_and_leaves_nothing(
    deep_files, kind, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["collection", "build", str(deep_files[kind]), "--name", f"deep_{kind}"])
    assert code == 2
    assert "too deeply" in one_error(capsys)
    assert not (tmp_path / "cache" / "collections" / f"deep_{kind}").exists()


@pytest.mark.parametrize("flag", ["--reranker", "--encoder"])
def test_a_folder_that_is_not_a_model_is_one_error(flag, capsys, tmp_path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    args = ["search", "heist", "--dataset", "sample", flag, str(folder)]
    if flag == "--reranker":
        args += ["--retriever", "bm25"]
    assert main(args) == 2
    assert "could not be loaded as a model" in one_error(capsys)
