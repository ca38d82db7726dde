"""Finding and loading the course corpora.

``load_text("tinyshakespeare")`` looks for the corpus, in this order:

1. ``path=`` given by the caller (a file, or a folder that holds the file);
2. the folder named by ``$LLMLAB_DATA``;
3. ``../shared/data`` beside the repository (how the course machines and CI ship it);
4. the local cache, ``$LLMLAB_CACHE`` or ``~/.cache/llmlab``;
5. a download from the corpus's canonical public address into that cache
   (skipped when ``LLMLAB_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

Nothing found means a :class:`CorpusNotFoundError` that says where to put the file. Other data is
never substituted silently. A known corpus found in a standard place is checked against its
SHA-256, and every file is checked to be non-empty UTF-8 text, so a truncated download or a wrong
file fails loudly (:class:`CorpusError`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class CorpusError(RuntimeError):
    """A corpus file exists but cannot be used (empty, not UTF-8, wrong checksum)."""


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """No copy of the corpus could be found or downloaded."""


@dataclass(frozen=True)
class Corpus:
    name: str
    filename: str  # file (or folder, for MMLU) name inside a data folder
    url: str
    sha256: str | None  # of the text file; None for folders
    description: str


CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        "tinyshakespeare",
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "Tiny Shakespeare (1,115,394 chars), char-rnn / nanoGPT's char-level corpus",
    ),
    "quantangshi": Corpus(
        "quantangshi",
        "quantangshi.txt",
        "https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/master/全唐诗/poet.tang.{start}.json",
        "1f35965d0d0c4af45fa87cd34befb569f8ef9edb7c38baf095b2bb17e8f07f54",
        "全唐诗 (57,603 Tang poems): title line, author line, verse lines, blank line",
    ),
    "mmlu": Corpus(
        "mmlu",
        "mmlu",
        "https://people.eecs.berkeley.edu/~hendrycks/data.tar",
        None,
        "MMLU (Hendrycks et al., 2021): 57 subjects, dev/val/test CSV files",
    ),
}

ALIASES = {"shakespeare": "tinyshakespeare", "tang": "quantangshi", "全唐诗": "quantangshi"}


def _offline() -> bool:
    return any(os.environ.get(v, "").strip() in {"1", "true", "yes"} for v in ("LLMLAB_OFFLINE", "HF_HUB_OFFLINE"))


def cache_dir() -> Path:
    return Path(os.environ.get("LLMLAB_CACHE", Path.home() / ".cache" / "llmlab"))


def search_dirs() -> list[tuple[str, Path]]:
    """The standard places, in the order they are searched (after an explicit ``path``)."""
    dirs = []
    if os.environ.get("LLMLAB_DATA"):
        dirs.append(("$LLMLAB_DATA", Path(os.environ["LLMLAB_DATA"])))
    dirs.append(("../shared/data", REPO_ROOT.parent / "shared" / "data"))
    dirs.append(("cache", cache_dir()))
    return dirs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve_name(name: str) -> Corpus:
    key = ALIASES.get(name, name)
    if key not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {sorted(CORPORA)} (or pass path= to any text file)")
    return CORPORA[key]


def _check_text_file(path: Path, corpus: Corpus | None, verify: bool) -> None:
    if path.stat().st_size == 0:
        raise CorpusError(f"{path} is empty. Delete it and put a complete copy there (or let the loader download one).")
    if verify and corpus is not None and corpus.sha256 is not None:
        digest = sha256_of(path)
        if digest != corpus.sha256:
            raise CorpusError(
                f"{path} does not look like {corpus.description}: its SHA-256 is {digest[:16]}..., "
                f"expected {corpus.sha256[:16]}... The file may be truncated or a different text. "
                f"Replace it with the original ({corpus.url.format(start=0)}), or pass verify=False to use it anyway."
            )


def find(name: str, path: str | os.PathLike | None = None, download: bool = True, verify: bool = True) -> Path:
    """Return the path of corpus ``name`` (a file, or the MMLU folder), downloading it if needed."""
    corpus = _resolve_name(name)
    looked: list[str] = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir() and (p / corpus.filename).exists():
            p = p / corpus.filename
        if not p.exists():
            raise CorpusNotFoundError(f"{name}: the path you gave, {p}, does not exist.")
        if p.is_file():
            # a user's own copy: sanity checks only (it may be a different edition on purpose)
            _check_text_file(p, corpus, verify=False)
        return p
    for label, d in search_dirs():
        p = d / corpus.filename
        looked.append(f"{label}: {p}")
        if p.exists():
            if p.is_file():
                _check_text_file(p, corpus, verify)
            return p
    if download and not _offline():
        try:
            return _download(corpus)
        except OSError as e:  # no network, HTTP error, disk full
            looked.append(f"download from {corpus.url.format(start=0)} failed: {e}")
    elif download:
        looked.append("download skipped: LLMLAB_OFFLINE/HF_HUB_OFFLINE is set")
    raise CorpusNotFoundError(
        f"Could not find the corpus {corpus.name!r} ({corpus.description}).\nLooked in:\n  "
        + "\n  ".join(looked)
        + f"\nPut {corpus.filename} in one of those folders, set LLMLAB_DATA to the folder that holds it, "
        "or pass path= to your copy."
    )


def load_text(name: str, path: str | os.PathLike | None = None, download: bool = True, verify: bool = True) -> str:
    """The whole corpus as one string (UTF-8)."""
    p = find(name, path=path, download=download, verify=verify)
    if p.is_dir():
        raise CorpusError(f"{p} is a folder; {name} is not a single text file (see load_mmlu for MMLU)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{p} is not UTF-8 text ({e}). Is it the right file?") from e
    if not text.strip():
        raise CorpusError(f"{p} holds only white space.")
    return text


def load_mmlu(split: str = "test", subjects: list[str] | None = None, path=None, download: bool = True) -> list[dict]:
    """MMLU questions as dicts: subject, question, choices (4 strings), answer (0-3)."""
    if split not in {"dev", "val", "test"}:
        raise ValueError(f"split must be dev, val or test, not {split!r}")
    root = find("mmlu", path=path, download=download)
    folder = root / split
    files = sorted(folder.glob(f"*_{split}.csv"))
    if not files:
        raise CorpusError(f"{folder} holds no *_{split}.csv files; is {root} an MMLU data folder?")
    rows = []
    for f in files:
        subject = f.name[: -len(f"_{split}.csv")]
        if subjects is not None and subject not in subjects:
            continue
        with open(f, newline="", encoding="utf-8") as fh:
            for rec in csv.reader(fh):
                if len(rec) != 6 or rec[5] not in "ABCD":
                    raise CorpusError(f"{f}: malformed row {rec[:1]}... (want question, A, B, C, D, answer letter)")
                rows.append({"subject": subject, "question": rec[0], "choices": rec[1:5], "answer": "ABCD".index(rec[5])})
    return rows


# ---------------------------------------------------------------------------------------------
# the online path (used on machines with internet; the course machines find ../shared/data first)


def _fetch(url: str, timeout: float = 60.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "llmlab"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _download(corpus: Corpus) -> Path:
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / corpus.filename
    tmp = dest.with_name(dest.name + ".part")
    print(f"llmlab.data: downloading {corpus.name} into {dest_dir} ...")
    if corpus.name == "tinyshakespeare":
        tmp.write_bytes(_fetch(corpus.url))
    elif corpus.name == "quantangshi":
        tmp.write_text(_tang_from_json_files(corpus.url), encoding="utf-8")
    elif corpus.name == "mmlu":
        with tarfile.open(fileobj=io.BytesIO(_fetch(corpus.url))) as tar:
            tar.extractall(dest_dir / "mmlu.part", filter="data")
        (dest_dir / "mmlu.part" / "data").rename(dest)
        return dest
    _check_text_file(tmp, corpus, verify=True)
    tmp.rename(dest)
    return dest


def _tang_from_json_files(url_template: str) -> str:
    """Rebuild quantangshi.txt from chinese-poetry's poet.tang.<start>.json files (1000 poems each)."""
    blocks = []
    start = 0
    while True:
        try:
            poems = json.loads(_fetch(url_template.format(start=start)))
        except urllib.error.HTTPError as e:
            if e.code == 404 and start > 0:
                break
            raise
        for p in poems:
            lines = [p.get("title", ""), p.get("author", "")] + list(p.get("paragraphs", []))
            blocks.append("\n".join(lines) + "\n")
        start += 1000
    return "\n".join(blocks)
