"""llmlab.data: the search order, and clear errors for missing, empty or corrupt corpora."""

import pytest

from llmlab import data


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No download, no ../shared/data, an empty cache: only what the test puts in place."""
    monkeypatch.setenv("LLMLAB_OFFLINE", "1")
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMLAB_DATA", raising=False)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    return tmp_path


def test_tinyshakespeare_from_shared_data():
    text = data.load_text("tinyshakespeare")
    assert len(text) == 1_115_394 and len(set(text)) == 65  # the figures in ../shared/data/README.md
    assert text.startswith("First Citizen:")


def test_alias_and_user_path(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("to be or not to be\n", encoding="utf-8")
    assert data.load_text("shakespeare", path=f) == "to be or not to be\n"  # a user's file is used as given


def test_missing_corpus_says_where_to_put_it(offline):
    with pytest.raises(data.CorpusNotFoundError) as e:
        data.load_text("tinyshakespeare")
    msg = str(e.value)
    assert "tinyshakespeare.txt" in msg and "LLMLAB_DATA" in msg and "download skipped" in msg


def test_empty_and_corrupt_files_are_refused(offline, monkeypatch):
    folder = offline / "data"
    folder.mkdir()
    monkeypatch.setenv("LLMLAB_DATA", str(folder))
    (folder / "tinyshakespeare.txt").write_text("")
    with pytest.raises(data.CorpusError, match="empty"):
        data.load_text("tinyshakespeare")
    (folder / "tinyshakespeare.txt").write_text("First Citizen:\ntruncated")
    with pytest.raises(data.CorpusError, match="SHA-256"):
        data.load_text("tinyshakespeare")
    assert data.load_text("tinyshakespeare", verify=False).startswith("First Citizen")


def test_not_utf8_is_refused(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("café".encode("latin-1"))
    with pytest.raises(data.CorpusError, match="not UTF-8"):
        data.load_text("tinyshakespeare", path=f)


def test_unknown_name():
    with pytest.raises(KeyError, match="known"):
        data.find("wikitext")


def test_tang_poetry_and_mmlu():
    tang = data.load_text("quantangshi")
    assert tang.startswith("帝京篇十首 一\n太宗皇帝\n")
    rows = data.load_mmlu("dev", subjects=["anatomy"])
    assert len(rows) == 5 and all(len(r["choices"]) == 4 and r["answer"] in range(4) for r in rows)
