"""The token cache: encoding without special tokens, the prefix token, cache hit/miss/keying/corruption."""

import os

import numpy as np
import pytest
from data_helpers import make_tokenizer
from transformers import PreTrainedTokenizerFast

from rce_jax.data import (
    Corpus,
    TokenizedCorpus,
    cache_path,
    default_cache_dir,
    load_corpus,
    prefix_token_id,
    tokenize_corpus,
    tokenizer_fingerprint,
)
from rce_jax.data import tokenize as tokenize_mod

@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(bos_post_processor=True)


@pytest.fixture()
def corpus():
    return Corpus.from_texts("mini", [
        "the lazy fox", "", "  leading and trailing  ", "ünïcödé ☕ text\r\nwith CRLF", "x" * 300,
    ])


def test_tokens_match_the_tokenizer_without_special_tokens(tmp_path, tokenizer, corpus):
    """Document i's tokens are the backend's encoding with add_special_tokens=False (no BOS added)."""
    tc = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    bos = tokenizer.bos_token_id
    assert tokenizer("the lazy fox")["input_ids"][0] == bos  # it would add BOS by default
    assert tc.num_docs == len(corpus) and tc.tokens.dtype == np.int32 and tc.offsets.dtype == np.int64
    for i, text in enumerate(corpus.documents):
        want = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids
        assert tc.doc_tokens(i).tolist() == want
        assert bos not in tc.doc_tokens(i).tolist()
    assert tc.doc_lengths[1] == 0
    assert tc.prefix_token == bos
    assert tc.corpus_fingerprint == corpus.fingerprint
    assert tc.tokenizer_fingerprint == tokenizer_fingerprint(tokenizer)


def test_word_and_byte_counts_of_the_original_text(tmp_path, tokenizer, corpus):
    """num_words is len(re.split(r'\\s+', text)) and num_bytes the UTF-8 length, per document."""
    tc = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    assert tc.num_words.tolist() == [3, 1, 5, 5, 1]
    assert tc.num_bytes.tolist() == [12, 0, 24, len("ünïcödé ☕ text\r\nwith CRLF".encode()), 300]


def test_prefix_token_is_bos_else_eos_else_error():
    """The prefix is BOS when there is one, EOS otherwise, and a clear error with neither."""
    assert prefix_token_id(make_tokenizer()) == 0
    assert prefix_token_id(make_tokenizer(bos=False)) == 1
    with pytest.raises(ValueError, match="neither a BOS nor an EOS"):
        prefix_token_id(make_tokenizer(bos=False, eos=False))
    with pytest.raises(ValueError, match="neither a BOS nor an EOS"):
        tokenize_corpus(Corpus.from_texts("c", ["a"]), make_tokenizer(bos=False, eos=False), use_cache=False)


def test_cache_miss_writes_then_hit_reads_without_tokenizing(tmp_path, tokenizer, corpus, monkeypatch):
    """The first call writes one cache file atomically; the second reads it and never re-encodes."""
    first = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    path = cache_path(corpus, tokenizer, tmp_path)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind

    def fail(*args, **kwargs):
        raise AssertionError("re-encoded although the cache was valid")

    monkeypatch.setattr(tokenize_mod, "_encode", fail)
    second = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    for key in ("tokens", "offsets", "num_words", "num_bytes"):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))


def test_use_cache_false_writes_nothing(tmp_path, tokenizer, corpus):
    """use_cache=False neither reads nor writes the cache folder."""
    tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path / "c", use_cache=False)
    assert not (tmp_path / "c").exists()


def test_cache_is_keyed_by_tokenizer_and_corpus(tmp_path, tokenizer, corpus):
    """Another vocabulary, special-token set or corpus gets another file; a reloaded copy of the same tokenizer does not."""
    path = cache_path(corpus, tokenizer, tmp_path)
    other_vocab = make_tokenizer(bos_post_processor=True, vocab_size=300)
    other_special = make_tokenizer(bos=False, bos_post_processor=True)
    other_corpus = Corpus.from_texts("mini", corpus.documents[:-1])
    assert len({path, cache_path(corpus, other_vocab, tmp_path), cache_path(corpus, other_special, tmp_path),
                cache_path(other_corpus, tokenizer, tmp_path)}) == 4
    tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = PreTrainedTokenizerFast.from_pretrained(tmp_path / "saved")
    assert tokenizer_fingerprint(reloaded) == tokenizer_fingerprint(tokenizer)
    assert cache_path(corpus, reloaded, tmp_path) == path
    renamed = Corpus("another-name", corpus.documents, corpus.doc_names)
    assert cache_path(renamed, tokenizer, tmp_path).name.split("-")[-1] == path.name.split("-")[-1]
    a = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    b = tokenize_corpus(corpus, other_vocab, cache_dir=tmp_path)
    assert a.tokens.tolist() != b.tokens.tolist()


def _corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_flip_token_byte(path):
    # Rewrite a valid npz whose tokens differ from what its checksum says.
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["tokens"] = arrays["tokens"].copy()
    arrays["tokens"][0] ^= 1
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _corrupt_garbage(path):
    path.write_bytes(b"not a zip file at all")


def _corrupt_bad_offsets(path):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["offsets"] = arrays["offsets"][::-1].copy()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_flip_token_byte, _corrupt_garbage, _corrupt_bad_offsets])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, tokenizer, corpus, corrupt):
    """A truncated, altered, garbage or inconsistent cache file warns, is rebuilt, and gives the right tokens."""
    good = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    path = cache_path(corpus, tokenizer, tmp_path)
    corrupt(path)
    with pytest.warns(UserWarning, match="is corrupt"):
        rebuilt = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt.tokens, good.tokens)
    np.testing.assert_array_equal(rebuilt.offsets, good.offsets)
    again = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)  # the rebuilt file is sound
    np.testing.assert_array_equal(again.tokens, good.tokens)


def test_cache_file_of_another_corpus_is_not_trusted(tmp_path, tokenizer, corpus):
    """A sound cache file copied under another key's name fails the stored-key check and is rebuilt."""
    other = Corpus.from_texts("mini", ["completely different text"])
    tokenize_corpus(other, tokenizer, cache_dir=tmp_path)
    os.replace(cache_path(other, tokenizer, tmp_path), cache_path(corpus, tokenizer, tmp_path))
    with pytest.warns(UserWarning, match="stored key does not match"):
        tc = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path)
    assert tc.num_docs == len(corpus)


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    """RCE_JAX_CACHE wins, then XDG_CACHE_HOME, then ~/.cache."""
    monkeypatch.setenv("RCE_JAX_CACHE", str(tmp_path / "r"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "r" / "tokens"
    monkeypatch.delenv("RCE_JAX_CACHE")
    assert default_cache_dir() == tmp_path / "x" / "rce_jax" / "tokens"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "rce_jax" / "tokens"


def test_default_cache_dir_is_used(monkeypatch, tmp_path, tokenizer):
    """Without cache_dir the file lands under $RCE_JAX_CACHE/tokens."""
    monkeypatch.setenv("RCE_JAX_CACHE", str(tmp_path))
    corpus = load_corpus("python-docs@heldout", max_docs=2)
    tokenize_corpus(corpus, tokenizer)
    assert cache_path(corpus, tokenizer).exists()
    assert cache_path(corpus, tokenizer).parent == tmp_path / "tokens"


def test_tokenized_corpus_validates_its_arrays():
    """Inconsistent arrays are rejected at construction."""
    tc = TokenizedCorpus.from_token_lists([[1, 2], [], [3]], prefix_token=7)
    assert tc.offsets.tolist() == [0, 2, 2, 3] and tc.num_tokens == 3
    with pytest.raises(ValueError, match="offsets must run from 0"):
        TokenizedCorpus("t", "c", "k", 0, tc.tokens, np.array([0, 2], np.int64), tc.num_words, tc.num_bytes)
    with pytest.raises(ValueError, match="token ids must lie in"):
        TokenizedCorpus.from_token_lists([[1, -2]], prefix_token=0)
    with pytest.raises(ValueError, match="1-D int32"):
        TokenizedCorpus("t", "c", "k", 0, tc.tokens.astype(np.int64), tc.offsets, tc.num_words, tc.num_bytes)


def test_a_tokenizer_that_yields_nothing_is_an_error(tmp_path):
    """A tokenizer that encodes a non-empty corpus to zero tokens (e.g. loaded without its vocabulary)
    is reported, not cached as an empty corpus."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    empty = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), eos_token="</s>")
    with pytest.raises(ValueError, match="produced no token for any document"):
        tokenize_corpus(Corpus.from_texts("c", ["some text"]), empty, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
