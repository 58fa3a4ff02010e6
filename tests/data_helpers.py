"""Helpers shared by the tests/test_data_*.py files (not a test module itself)."""

TRAIN_TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "def f(x):\n    return x + 1\n",
    "Grüße aus Köln — naïve café ☕",
]


def make_tokenizer(*, bos=True, eos=True, bos_post_processor=False, vocab_size=320, texts=TRAIN_TEXTS):
    """A tiny byte-level BPE trained on a few strings (no download), wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    if bos_post_processor:  # a tokenizer that adds BOS by default, like Llama's
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    kwargs = {}
    if bos:
        kwargs["bos_token"] = "<s>"
    if eos:
        kwargs["eos_token"] = "</s>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


# --- An independent reimplementation of the harness's algorithm -------------------------------
# lm_eval.utils.get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len=1),
# then make_disjoint_window, then what HFLM._loglikelihood_tokens feeds the model: the input is
# (context + continuation)[-(max_seq_len + 1):][:-1] and the last len(continuation) logits are
# scored. Returned per scored token: (its index in the document, the model input up to and
# including the position that predicts it, the target), in the order the harness scores them.

def harness_scored_tokens(tokens, prefix, max_seq_len):
    if len(tokens) == 0:
        return []
    pairs = []  # (context, continuation, index of the continuation's first token in the document)
    first = min(max_seq_len, len(tokens))
    pairs.append(([prefix] + tokens[: first - 1], tokens[:first], 0))
    done = first
    while done < len(tokens):
        step = min(len(tokens) - done, max_seq_len)  # pred_len = max_seq_len - context_len + 1
        end = done + step
        pairs.append((tokens[end - max_seq_len - 1 : end - 1], tokens[end - step : end], end - step))
        done = end
    out = []
    for ctx, cont, cont_start in pairs:
        ctx = ctx[: len(ctx) - (len(cont) - 1)]  # make_disjoint_window
        model_input = (ctx + cont)[-(max_seq_len + 1):][:-1]
        assert len(model_input) <= max_seq_len
        first_scored = len(model_input) - len(cont)
        for j, target in enumerate(cont):
            out.append((cont_start + j, model_input[: first_scored + j + 1], target))
    return out
