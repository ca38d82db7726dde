"""Token ids to streamed text, with stop strings that may span several tokens.

Two traps when text is streamed a token at a time:

- a token can end in the middle of a UTF-8 character (byte-level BPE splits 漢 into 3 byte tokens), so
  text that ends in the replacement character ``\\ufffd`` is held back until the character completes;
- a stop string can arrive in pieces (``"\\n\\n"`` as two ``"\\n"`` tokens, or ``"END"`` as ``"E"`` + ``"ND"``),
  so the tail of the text that could still become a stop string is held back too, and sent only once
  it cannot; when a stop string completes, the text is cut before it and never sent.

The whole output is decoded again at each token (simple and always right, since merges can change
earlier characters; quadratic, which is fine for the lengths served here).
"""

from __future__ import annotations


class Detokenizer:
    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.text = ""        # the output so far (cut at a stop string once one is found)
        self.sent = 0         # characters of self.text already returned by step()
        self.stopped = False

    def step(self, output_ids: list[int], final: bool = False) -> str:
        """New text to send after ``output_ids`` grew (``final``: the sequence ended, flush everything)."""
        text = self.tokenizer.decode(output_ids, skip_special_tokens=True)
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if hits:
            text, self.stopped, final = text[:min(hits)], True, True
        self.text = text
        safe = len(text)
        if not final:
            if text.endswith("\ufffd"):
                safe = len(text.rstrip("\ufffd"))
            for s in self.stop:   # the longest tail of the text that is a proper prefix of a stop string
                for k in range(min(len(s) - 1, safe), 0, -1):
                    if text[safe - k:safe] == s[:k]:
                        safe -= k
                        break
        delta = text[self.sent:safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return delta
