"""rce-jax against lm-evaluation-harness on real WikiText articles, in both conventions.

    python experiments/harness_agreement.py --raw wiki.test.raw --tokenizer DIR [--tokenizer DIR2]
        --articles 10 --context-length 64 --out harness_agreement
    python -m rce_jax.bench.harness_agreement ...   # the same

Splits a WikiText raw file (e.g. WikiText-2 ``wiki.test.raw``) into articles at its top-level
`` = Title = `` lines (the document-level corpus the harness's ``wikitext`` task reads), saves
them with ``save_to_disk``, and for each tokenizer builds a tiny random Llama of its vocabulary
(``save_pretrained``), then scores the articles with ``rce-jax`` (``wikitext:FOLDER@test``) and
with lm_eval's own ``simple_evaluate`` of a task with the harness's wikitext detokenizer and
word/byte counting, for: rce-jax default vs lm_eval ``add_bos_token=False``, rce-jax
``--add-special-tokens`` vs lm_eval's default, and rce-jax default vs lm_eval's default (the gap
a tokenizer that adds BOS opens). Needs the ``harness`` extra. Writes ``agreement.json``/``.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
from pathlib import Path

from ..io import check_output_dir

METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
_TITLE = re.compile(r"^ = [^=].* = $")


def split_articles(raw: str, n: int) -> list[str]:
    """The first ``n`` articles of a WikiText raw text, each from its title line to the next."""
    lines = raw.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":  # the text's final line break ends a line, it starts none
        lines.pop()
    starts = [i for i, line in enumerate(lines) if _TITLE.match(line)]
    if not starts:
        raise ValueError("no ' = Title = ' lines: not a WikiText raw file")
    bounds = starts[:n + 1] if len(starts) > n else starts + [len(lines)]
    return ["\n".join(lines[a:b]) + "\n" for a, b in zip(bounds, bounds[1:])]


def tiny_model(tokenizer_dir, out_dir, seed: int = 0) -> Path:
    import torch
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(tokenizer_dir)
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    config = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=512, bos_token_id=bos,
                            eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = tf.LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def harness(model_dir, pages_file, context_length: int, add_bos_token) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    pw = importlib.import_module("lm_eval.tasks.wikitext.preprocess_wikitext")
    task = {"task": "wikitext_local", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(pages_file)}},
            "output_type": "loglikelihood_rolling", "test_split": "test", "doc_to_text": "",
            "doc_to_target": pw.wikitext_detokenizer, "process_results": pw.process_results,
            "metric_list": [{"metric": m} for m in METRICS]}
    lm = HFLM(pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=8,
              max_length=context_length, add_bos_token=add_bos_token)
    res = lm_eval.simple_evaluate(model=lm, tasks=[task])["results"]["wikitext_local"]
    pages = [json.loads(line)["page"] for line in Path(pages_file).read_text().splitlines()]
    n_tokens = sum(len(lm.tok_encode(pw.wikitext_detokenizer({"page": p}))) for p in pages)
    return {"n_tokens": n_tokens, **{m: res[f"{m},none"] for m in METRICS}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/harness_agreement.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="a WikiText raw file (wiki.test.raw)")
    p.add_argument("--tokenizer", action="append", required=True, help="tokenizer folder; repeatable")
    p.add_argument("--articles", type=int, default=10)
    p.add_argument("--context-length", type=int, default=64)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    from ..evaluate import EvalConfig, evaluate
    from ..io import write_json, write_text

    out = Path(args.out)
    pages = split_articles(Path(args.raw).read_text(encoding="utf-8"), args.articles)
    folder = out / "wikitext_document_level"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"page": pages})}).save_to_disk(str(folder))
    pages_file = out / "pages.jsonl"
    write_text(pages_file, "".join(json.dumps({"page": pg}) + "\n" for pg in pages))
    rows = []
    for tok_dir in args.tokenizer:
        model_dir = tiny_model(tok_dir, out / "models" / Path(tok_dir.rstrip("/")).name)
        ours = {s: evaluate(model_dir, f"wikitext:{folder}@test", out / "results",
                            EvalConfig(context_length=args.context_length, add_special_tokens=s),
                            cache_dir=out / "tokens", progress=False) for s in (False, True)}
        theirs = {b: harness(model_dir, pages_file, args.context_length, b) for b in (False, None)}
        for label, mine, ref in (("default vs add_bos_token=False", ours[False], theirs[False]),
                                 ("--add-special-tokens vs lm_eval default", ours[True], theirs[None]),
                                 ("default vs lm_eval default", ours[False], theirs[None])):
            rows.append({"tokenizer": str(tok_dir), "comparison": label, "tokens_ours": mine["n_tokens"],
                         "tokens_lm_eval": ref["n_tokens"],
                         **{f"rel_{m}": abs(mine[m] / ref[m] - 1) for m in METRICS}})
    write_json(out / "agreement.json", {"articles": len(pages), "context_length": args.context_length,
                                        "rows": rows})
    md = ["| tokenizer | comparison | tokens (ours / lm_eval) | word ppl | byte ppl | bits/byte |",
          "|---|---|---|---:|---:|---:|"]
    md += [f"| {Path(r['tokenizer']).name} | {r['comparison']} | {r['tokens_ours']} / {r['tokens_lm_eval']} | "
           f"{r['rel_word_perplexity']:.2e} | {r['rel_byte_perplexity']:.2e} | {r['rel_bits_per_byte']:.2e} |"
           for r in rows]
    write_text(out / "agreement.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
