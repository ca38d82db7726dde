"""Continuation tasks from the real corpora: a Shakespeare passage, and a 五言绝句 containing a given character.

Splits follow the pretraining splits of ``llmlab.zoo``, so validation and test items are text the base model
never trained on:

- Tiny Shakespeare: the first 90 % of the characters are training text (nanoGPT's split); of the last 10 %,
  the first half is validation, the second half test. A speech belongs to the part where it starts; one that
  straddles a boundary is not used.
- 全唐诗: the zoo holds out every 10th poem (index % 10 == 9); here index % 20 == 9 is validation and
  index % 20 == 19 test, all other poems training. The corpus is in traditional characters, and so are the
  required characters and reference poems.
"""

from __future__ import annotations

import functools
import re

from .common import Example, Verdict, check_split, rng_for, sample

# ---------------------------------------------------------------------------------------------
# Shakespeare continuation


@functools.lru_cache(maxsize=1)
def shakespeare_speeches() -> tuple[tuple[str, str, list[str]], ...]:
    """(split, speaker, verse lines) of every speech with at least 3 lines, in corpus order."""
    from ..data import load_text

    text = load_text("tinyshakespeare")
    cuts = (0.9 * len(text), 0.95 * len(text))
    out, pos = [], 0
    for block in text.split("\n\n"):
        start, end = pos, pos + len(block)
        pos = end + 2
        lines = block.strip("\n").split("\n")
        if len(lines) < 4 or not lines[0].endswith(":"):
            continue
        where = [start < c for c in cuts], [end <= c for c in cuts]
        if where[0] != where[1]:
            continue  # straddles a split boundary
        split = "train" if end <= cuts[0] else "validation" if end <= cuts[1] else "test"
        out.append((split, lines[0][:-1], lines[1:]))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def shakespeare_vocabulary() -> frozenset[str]:
    """Every word of Tiny Shakespeare (lower case): the verifier's idea of the register."""
    from ..data import load_text

    return frozenset(_words(load_text("tinyshakespeare")))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


class ShakespeareContinuation:
    """"Continue this passage": the first lines of a speech in the prompt, the next (up to 4) lines as reference."""

    name = "shakespeare"
    MIN_WORDS = 4
    IN_VOCAB = 0.85  # the share of a response's words that Shakespeare uses (modern English scores ~0.6-0.8)

    def generate(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        split = check_split(split)
        items = [s for s in shakespeare_speeches() if s[0] == split]
        out = []
        for i, (_, speaker, lines) in enumerate(sample(items, n, rng_for(self.name, split, seed), self.name)):
            k = max(2, len(lines) // 2)  # the prompt's share of the speech
            shown, rest = lines[:k], lines[k:k + 4]
            if not rest:
                shown, rest = lines[:-1], lines[-1:]
            passage = speaker + ":\n" + "\n".join(shown)
            out.append(Example(self.name, split, "shakespeare:" + passage, "Continue this passage from "
                               f"Shakespeare with the next {len(rest)} line{'s' * (len(rest) > 1)}:\n\n{passage}",
                               "\n".join(rest), "en", {"n_lines": len(rest), "passage": passage,
                                                        "min_words": min(self.MIN_WORDS, len(_words("\n".join(rest))))}))
        return out

    def verify(self, example: Example, response: str) -> Verdict:
        """Style, not the exact words (any good continuation passes): enough words, in Shakespeare's vocabulary,
        no line repeated or copied from the passage, not more than twice the lines asked for."""
        lines = [ln.strip() for ln in response.strip().split("\n") if ln.strip()]
        words = _words(response)
        vocab = shakespeare_vocabulary()
        shown = {ln.strip() for ln in example.meta["passage"].split("\n")}
        share = sum(w in vocab for w in words) / len(words) if words else 0.0
        checks = {
            "length": len(words) >= example.meta["min_words"],
            "register": share >= self.IN_VOCAB,
            "no_repeats": len(set(lines)) == len(lines),
            "not_copied": not shown.intersection(lines),
            "lines": 0 < len(lines) <= 2 * example.meta["n_lines"],
        }
        return Verdict.from_checks(checks, {
            "length": f"{len(words)} words; at least {example.meta['min_words']} expected",
            "register": f"only {share:.0%} of the words occur in Shakespeare (at least {self.IN_VOCAB:.0%} expected)",
            "no_repeats": "a line is repeated",
            "not_copied": "a line of the passage is copied into the continuation",
            "lines": f"{len(lines)} lines; {example.meta['n_lines']} asked for (at most twice that accepted)",
        })


# ---------------------------------------------------------------------------------------------
# 五言绝句


HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
_COUPLET = re.compile(rf"^({HAN}{{5}})[，,、；;]({HAN}{{5}})[。！？.!?]$")
_VERSE = re.compile(rf"^({HAN}{{5}})([，,、；;。！？.!?])$")
BREAK, END = "，,、；;", "。！？.!?"


def parse_jueju(text: str) -> list[tuple[str, str]] | None:
    """The 4 verses of a poem as (5 characters, punctuation mark), or None if it is not 4 x 5 characters.

    Accepts a couplet per line (``床前明月光，疑是地上霜。``, the corpus's layout) or a verse per line.
    """
    verses = []
    for line in (ln.strip() for ln in text.strip().split("\n")):
        if not line:
            continue
        if m := _COUPLET.match(line):
            verses += [(m.group(1), line[5]), (m.group(2), line[-1])]
        elif m := _VERSE.match(line):
            verses.append((m.group(1), m.group(2)))
        else:
            return None
    return verses if len(verses) == 4 else None


@functools.lru_cache(maxsize=1)
def jueju_poems() -> tuple[tuple[str, str, str, str], ...]:
    """(split, title, author, body) of every 五言绝句 of 全唐诗 (two lines of two 5-character verses each).

    全唐诗 holds some poems twice (under two titles or authors): each text is used once, and is training text
    if any of its copies is (the zoo pretrains on every copy outside the held-out indices).
    """
    from ..data import load_text
    from ..zoo import clean_tang, tang_poems

    first: dict[str, tuple[str, str, str]] = {}  # body -> (split, title, author) of its first copy
    for i, poem in enumerate(tang_poems(clean_tang(load_text("quantangshi")))):
        title, author, *body = poem.split("\n") + ["", ""]  # (a few blocks have no author or verse)
        body = "\n".join(b for b in body if b)
        if len(body.split("\n")) != 2 or not all(_COUPLET.match(b) for b in body.split("\n")):
            continue
        split = "validation" if i % 20 == 9 else "test" if i % 20 == 19 else "train"
        if body not in first:
            first[body] = (split, title, author)
        elif split == "train":
            first[body] = ("train",) + first[body][1:]
    return tuple((split, title, author, body) for body, (split, title, author) in first.items())


class Jueju:
    """"写一首五言绝句，诗中须有「月」字": the reference is a real poem of 全唐诗 that contains the character."""

    name = "jueju"

    def generate(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        split = check_split(split)
        rng = rng_for(self.name, split, seed)
        out = []
        for _, title, author, body in sample([p for p in jueju_poems() if p[0] == split], n, rng, self.name):
            chars = sorted({c for c in body if re.match(HAN, c)})
            char = rng.choice(chars)
            prompt = f"写一首五言绝句，诗中须有「{char}」字。"
            out.append(Example(self.name, split, f"jueju:{title}/{author}/{body}/{char}", prompt, body, "zh",
                               {"char": char, "title": title, "author": author}))
        return out

    def verify(self, example: Example, response: str) -> Verdict:
        """Form: 4 verses of 5 Han characters, a pause mark after verses 1 and 3 and a full stop after 2 and 4;
        content: the required character occurs."""
        verses = parse_jueju(response)
        char = example.meta["char"]
        checks = {
            "form": verses is not None,
            "punctuation": verses is not None and all(p in BREAK for _, p in verses[0::2])
            and all(p in END for _, p in verses[1::2]),
            "character": char in "".join(v for v, _ in verses) if verses else char in response,
        }
        return Verdict.from_checks(checks, {
            "form": "not 4 verses of 5 Chinese characters each (one couplet or one verse per line)",
            "punctuation": "verses 1 and 3 must end with a pause (，) and verses 2 and 4 with a full stop (。)",
            "character": f"the character 「{char}」 does not occur",
        })
