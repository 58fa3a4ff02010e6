"""Word perplexity, byte perplexity and bits per byte, as lm-evaluation-harness.

The harness (``loglikelihood_rolling`` tasks such as wikitext) pairs each
document's total log-likelihood with its word and byte counts and aggregates
over the corpus as a ratio of sums (``weighted_mean``)::

    word_perplexity = exp(-sum_ll / sum_words)
    byte_perplexity = exp(-sum_ll / sum_bytes)
    bits_per_byte   = -sum_ll / (sum_bytes * ln 2)

with ``words = len(re.split(r"\\s+", text))`` and ``bytes = len(text.encode("utf-8"))``
of the original document text. Note the word count is the harness's, not
``len(text.split())``: leading or trailing white space adds an empty "word"
each, and an empty document counts as one word.
"""

from __future__ import annotations

import dataclasses
import math
import re

_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Words of ``text`` as lm-evaluation-harness counts them: ``len(re.split(r"\\s+", text))``."""
    return len(_WHITESPACE.split(text))


def count_bytes(text: str) -> int:
    """UTF-8 bytes of ``text``."""
    return len(text.encode("utf-8"))


@dataclasses.dataclass(frozen=True)
class TextMetrics:
    """Corpus-level perplexities from a summed natural-log log-likelihood.

    Attributes:
      sum_logprob: sum over every scored token of ``log p(token)`` (nats, <= 0).
      num_tokens: number of scored tokens.
      num_words: sum of :func:`count_words` over the documents scored.
      num_bytes: sum of :func:`count_bytes` over the documents scored.
    """

    sum_logprob: float
    num_tokens: int
    num_words: int
    num_bytes: int

    def __post_init__(self):
        if not math.isfinite(self.sum_logprob):
            raise ValueError(f"sum_logprob must be finite, got {self.sum_logprob}")
        for field in ("num_tokens", "num_words", "num_bytes"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)}")

    @property
    def token_perplexity(self) -> float:
        return math.exp(-self.sum_logprob / self.num_tokens)

    @property
    def word_perplexity(self) -> float:
        return math.exp(-self.sum_logprob / self.num_words)

    @property
    def byte_perplexity(self) -> float:
        return math.exp(-self.sum_logprob / self.num_bytes)

    @property
    def bits_per_byte(self) -> float:
        return -self.sum_logprob / (self.num_bytes * math.log(2))

    def as_dict(self) -> dict[str, float]:
        return {
            "sum_logprob": float(self.sum_logprob),
            "num_tokens": int(self.num_tokens),
            "num_words": int(self.num_words),
            "num_bytes": int(self.num_bytes),
            "token_perplexity": self.token_perplexity,
            "word_perplexity": self.word_perplexity,
            "byte_perplexity": self.byte_perplexity,
            "bits_per_byte": self.bits_per_byte,
        }

