"""The run's tokenizer: a Hugging Face tokenizer folder, or a byte-level BPE trained here.

A trained tokenizer is a ``tokenizers`` byte-level BPE with ``<s>`` (BOS) and ``</s>`` (EOS),
wrapped as ``transformers.PreTrainedTokenizerFast``. It is saved under the cache folder in
``bpe-<fingerprint>/``, where the fingerprint hashes the recipe (format version, vocabulary size,
minimum pair frequency, the ``tokenizers`` version) and the content fingerprints of the corpora
it was trained on, in order; a later run with the same recipe and texts reuses it. The folder
is written under a temporary name and renamed, so a killed run never leaves a half-saved one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..data import as_corpus

FORMAT = "rce-jax-bpe-v1"
BOS, EOS = "<s>", "</s>"


def default_tokenizer_dir() -> Path:
    """``$RCE_JAX_CACHE/tokenizers``, else ``$XDG_CACHE_HOME/rce_jax/tokenizers``, else ``~/.cache/...``."""
    if os.environ.get("RCE_JAX_CACHE"):
        return Path(os.environ["RCE_JAX_CACHE"]).expanduser() / "tokenizers"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rce_jax" / "tokenizers"


def bpe_fingerprint(corpora, vocab_size: int, min_frequency: int) -> str:
    import tokenizers

    blob = json.dumps({"format": FORMAT, "vocab_size": vocab_size, "min_frequency": min_frequency,
                       "tokenizers": tokenizers.__version__, "specials": [BOS, EOS],
                       "corpora": [c.fingerprint for c in corpora]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def train_bpe(corpora, vocab_size: int, min_frequency: int = 2):
    """A byte-level BPE with BOS/EOS trained on the documents of ``corpora`` (in order)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((doc for c in corpora for doc in c.documents), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)


def load_tokenizer(path):
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such tokenizer folder")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.bos_token_id is None and tokenizer.eos_token_id is None:
        raise ValueError(f"{path}: the tokenizer has neither a BOS nor an EOS token; training "
                         "needs one to mark document boundaries")
    return tokenizer


def get_tokenizer(section, train_corpora, *, text_field: str = "text", verbose: bool = True):
    """The tokenizer of a run (``section``: ``config.tokenizer``); trained and cached if needed.
    ``train_corpora``: specs or loaded ``Corpus`` objects (used unless the section names its own)."""
    if section.path is not None:
        return load_tokenizer(section.path)
    corpora = [as_corpus(c, text_field=text_field) for c in (section.corpora or train_corpora)]
    specs = [c.name for c in corpora]
    fp = bpe_fingerprint(corpora, section.vocab_size, section.min_frequency)
    root = Path(section.cache_dir) if section.cache_dir else default_tokenizer_dir()
    folder = root / f"bpe-{section.vocab_size}-{fp[:16]}"
    if (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    if verbose:
        print(f"[rce-jax] training a {section.vocab_size}-entry BPE tokenizer on {', '.join(specs)}",
              flush=True)
    tokenizer = train_bpe(corpora, section.vocab_size, section.min_frequency)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        tokenizer.save_pretrained(str(tmp))
        (tmp / "rce_jax_tokenizer.json").write_text(json.dumps(
            {"fingerprint": fp, "corpora": specs, "vocab_size": section.vocab_size,
             "min_frequency": section.min_frequency}, indent=2))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process saved the same tokenizer first: use theirs
            if not (folder / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_tokenizer(folder)
