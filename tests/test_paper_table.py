"""rce_jax.paper (table, study; experiments/paper_models.py is its command line): the paper's
model table on local checkpoints (issue 6, a).

The table is the documented reconstruction (32 models); the plan finds models under a models
folder in every documented layout and names why the others are not run; corpora fall back to
the embedded ones; one tiny end-to-end run (two random Llamas, a local JSONL corpus, context 16)
writes results, the scaling report and figures, is resumable and refuses stale results.
"""

import json

import numpy as np
import pytest
import transformers as tf
from data_helpers import make_tokenizer
from eval_fixtures import WORDS, write_corpus
from hf_tiny import make_hf_model

from rce_jax.models import FAMILIES
from rce_jax.paper import table as pt
from rce_jax.paper.study import main
from tolerances import FIT_TWO_ROUTES_REL


def test_table_is_the_documented_reconstruction():
    """32 models over the paper's eight families, each repo once, each architecture one we port;
    Wikipedia, C4 and GitHub code are the default corpora, each with an embedded fallback."""
    table = pt.load_table()
    counts = {}
    for m in table.models:
        counts[m.family] = counts.get(m.family, 0) + 1
        assert m.architecture in FAMILIES
    assert counts == {"gpt2": 4, "distilgpt2": 1, "pythia": 8, "opt": 6, "llama-2": 3, "llama-3.2": 2,
                      "mistral": 1, "qwen2.5": 7}
    assert len({m.repo for m in table.models}) == 32
    defaults = {k: c for k, c in table.corpora.items() if c.default}
    assert list(defaults) == ["wikipedia", "c4", "github-code"]
    assert defaults["wikipedia"].spec.startswith("tfds:wikipedia/20230601.en@")
    assert defaults["c4"].spec.startswith("tfds:c4/en@validation")
    assert defaults["github-code"].spec_env == "RCE_JAX_GITHUB_CODE"
    assert [c.fallback for c in defaults.values()] == ["python-docs", "python-docs", "python-code"]
    assert table.defaults.context_length == 1024


def fake_model(path, config, *, weights=True, tokenizer=True):
    """A folder that looks like a checkpoint to the plan (the plan reads only config.json, whose
    stored dtype, as save_pretrained writes it, names the dtype of --dtype auto)."""
    path.mkdir(parents=True)
    config.dtype = "float32"
    config.to_json_file(path / "config.json")
    if weights:
        (path / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")


def gpt2_config(n_positions=1024):
    return tf.GPT2Config(vocab_size=64, n_embd=8, n_layer=1, n_head=2, n_positions=n_positions)


def test_dry_run_plan_lists_present_and_missing(tmp_path, monkeypatch, capsys):
    """Repo-id, last-part and alias folders are found; a folder without weights/tokenizer, with
    another architecture or too few positions is named with the reason; the rest is missing.
    Unavailable corpora fall back to the embedded ones (deduplicated) or are skipped with
    --no-fallback; the dry run writes nothing."""
    models = tmp_path / "models"
    fake_model(models / "openai-community" / "gpt2", gpt2_config())
    fake_model(models / "gpt2-medium", gpt2_config())
    fake_model(models / "distilgpt2", gpt2_config())
    fake_model(models / "openai-community" / "gpt2-large", gpt2_config(n_positions=512))
    fake_model(models / "EleutherAI" / "pythia-70m", tf.GPTNeoXConfig(), weights=False, tokenizer=False)
    fake_model(models / "facebook--opt-125m", tf.LlamaConfig(vocab_size=64, hidden_size=8,
                                                             num_hidden_layers=1, num_attention_heads=2))
    monkeypatch.delenv("RCE_JAX_GITHUB_CODE", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # empty: nothing prepared
    table = pt.load_table()
    plan = pt.make_plan(table, tmp_path / "out", models_dir=models, hf_cache=False, context_length=1024)
    status = {m.entry.repo: m for m in plan.models}
    assert [m.entry.repo for m in plan.present] == ["openai-community/gpt2", "openai-community/gpt2-medium",
                                                    "distilbert/distilgpt2"]
    assert status["openai-community/gpt2"].path == str(models / "openai-community" / "gpt2")
    assert status["distilbert/distilgpt2"].path == str(models / "distilgpt2")
    assert status["openai-community/gpt2-large"].status == "context-too-long"
    assert status["EleutherAI/pythia-70m"].status == "incomplete"
    assert status["EleutherAI/pythia-70m"].reason == "lacks weights, tokenizer files"
    assert status["facebook/opt-125m"].status == "wrong-architecture"
    assert "'llama'" in status["facebook/opt-125m"].reason
    missing = [m.entry.repo for m in plan.models if m.status == "missing"]
    assert len(missing) == 32 - 6 and "Qwen/Qwen2.5-72B" in missing
    assert plan.substitutes == {"wikipedia": "python-docs", "c4": "python-docs", "github-code": "python-code"}
    assert [c.key for c in plan.used] == ["python-docs", "python-code"]
    assert len(plan.runs) == 3 * 2 and not any(r.done for r in plan.runs)

    rc = main(["--out", str(tmp_path / "out"), "--models-dir", str(models), "--no-hf-cache", "--dry-run",
                  "--families", "gpt2,opt", "--no-fallback", "--corpora", "c4,python-code"])
    text = capsys.readouterr().out
    assert rc == 0 and not (tmp_path / "out").exists()
    assert "models: 2 of 10 present" in text
    assert "MISSING" in text and "facebook/opt-1.3b" in text and "WRONG-ARCHITECTURE" in text
    assert "c4           NOT AVAILABLE" in text and "using" not in text
    assert "evaluations: 2 (0 done, 2 to run) on python-code = python-code@all" in text


def test_table_and_option_errors(tmp_path):
    """A table with an unknown architecture, a repeated repo or a split-less spec, and unknown
    families or corpora, are refused with the reason."""
    def table(text):
        p = tmp_path / "t.yaml"
        p.write_text(text)
        return p

    head = ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, "
            "n_key: non_embedding}\n")
    with pytest.raises(ValueError, match=r"t.yaml: families.f.architecture: must be one of \(.*\), got 'bert'"):
        pt.load_table(table(head + "families: {f: {architecture: bert, models: [{repo: a/b}]}}\n"
                            "corpora: {c: {spec: python-docs@all}}\n"))
    with pytest.raises(ValueError, match=r"\['a/b'\] listed twice"):
        pt.load_table(table(head + "families: {f: {architecture: gpt2, models: [{repo: a/b}]},\n"
                            "  g: {architecture: opt, models: [{repo: a/b}]}}\ncorpora: {c: {spec: python-docs@all}}\n"))
    t = pt.load_table(table(head + "families: {f: {architecture: gpt2, models: [{repo: a/b}]}}\n"
                            "corpora: {c: {spec: python-docs}}\n"))
    with pytest.raises(ValueError, match="names no split"):
        pt.make_plan(t, tmp_path, hf_cache=False, corpora=["c"], context_length=16)
    with pytest.raises(ValueError, match="no corpus selected"):
        pt.make_plan(t, tmp_path, hf_cache=False, context_length=16)
    with pytest.raises(ValueError, match=r"unknown families \['nope'\]"):
        pt.make_plan(t, tmp_path, hf_cache=False, families=["nope"], context_length=16)
    with pytest.raises(ValueError, match=r"unknown corpora \['wiki'\]"):
        pt.make_plan(t, tmp_path, hf_cache=False, corpora=["wiki"], context_length=16)
    assert main(["--out", str(tmp_path / "o"), "--config", str(tmp_path / "none.yaml")]) == 2


TINY_TABLE = """
defaults: {context_length: 16, batch_size: 4, dtype: float32, max_tokens: null, n_key: non_embedding}
families:
  tiny:
    architecture: llama
    models:
      - {repo: tiny-org/tiny-a}
      - {repo: tiny-org/tiny-b}
      - {repo: tiny-org/tiny-c}
corpora:
  words:
    spec: CORPUS
    default: true
"""


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """Two random Llamas of different widths (a third listed one is absent) and a JSONL corpus."""
    root = tmp_path_factory.mktemp("paper_models")
    tokenizer = make_tokenizer(vocab_size=320, texts=[" ".join(WORDS)] * 4)
    for name, width, layers, seed in (("tiny-a", 16, 1, 0), ("tiny-b", 32, 2, 1)):
        config = tf.LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, num_hidden_layers=layers,
                                num_attention_heads=2, intermediate_size=2 * width, max_position_embeddings=64,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        make_hf_model(config, seed=seed).save_pretrained(root / "models" / "tiny-org" / name)
        tokenizer.save_pretrained(root / "models" / "tiny-org" / name)
    write_corpus(root / "words.jsonl", n_docs=6, seed=2, max_words=30)
    (root / "table.yaml").write_text(TINY_TABLE.replace("CORPUS", str(root / "words.jsonl")))
    return root


def test_end_to_end_tiny_models(tiny_setup, capsys):
    """Results per model x corpus, run.json naming the missing model, the scaling report with the
    table's family (its CE slope equals np.polyfit on the result files) and the figures; a second
    run reuses the results; other settings on the same --out get results of their own, the first
    ones untouched."""
    root = tiny_setup
    out = root / "out"
    args = ["--config", str(root / "table.yaml"), "--out", str(out), "--models-dir", str(root / "models"),
            "--no-hf-cache", "--no-progress", "--cache-dir", str(root / "cache")]
    assert main(args) == 0
    results = sorted((out / "results").glob("*.json"))
    assert [p.name.rsplit("__", 1)[0] for p in results] == [
        "tiny-org_tiny-a__words__L16-plain-rankmodel-float32", "tiny-org_tiny-b__words__L16-plain-rankmodel-float32"]
    recs = [json.loads(p.read_text()) for p in results]
    assert [r["model"] for r in recs] == ["tiny-org/tiny-a", "tiny-org/tiny-b"]
    assert all(r["settings"]["context_length"] == 16 and r["family"] == "llama" for r in recs)
    run = json.loads((out / "run.json").read_text())
    assert [(m["repo"], m["status"]) for m in run["models"]] == [
        ("tiny-org/tiny-a", "present"), ("tiny-org/tiny-b", "present"), ("tiny-org/tiny-c", "missing")]
    assert run["failures"] == [] and run["used_corpora"] == {"words": str(root / "words.jsonl")}

    report = json.loads((out / "scaling.json").read_text())
    assert {(m["dataset"], m["family"]) for m in report["models"]} == {("words", "tiny")}
    ce_fit = next(r for r in report["fits"] if r["metric"] == "ce")
    n = [r["n_params_non_embedding"] for r in recs]
    slope, _ = np.polyfit(np.log(n), np.log([r["ce"] for r in recs]), 1)
    assert (ce_fit["family"], ce_fit["n_points"]) == ("tiny", 2)
    assert ce_fit["slope"] == pytest.approx(slope, rel=FIT_TWO_ROUTES_REL)
    for name in ("scaling.md", "scaling.csv", "scaling_words.png", "ee_share_words.png", "p_e_words.png"):
        assert (out / name).stat().st_size > 0, name
    capsys.readouterr()

    stamps = [p.stat().st_mtime_ns for p in results]
    assert main(args) == 0
    assert "evaluations: 2 (2 done, 0 to run)" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in results] == stamps

    assert main(args + ["--context-length", "8"]) == 0
    assert "evaluations: 2 (0 done, 2 to run)" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert len(list((out / "results").glob("*__L8-*.json"))) == 2


def test_table_schema_errors_name_the_file_entry_and_key(tmp_path):
    """The table goes through the one loader: a missing default, a value of the wrong type, an
    unknown key, a corpus with both or neither of spec/spec_env and a bad fallback are refused
    with the file, the dotted key of the entry and the problem."""
    p = tmp_path / "t.yaml"
    fam = "families: {f: {architecture: gpt2, models: [{repo: a/b}]}}\n"
    cases = [
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, n_key: non_embedding}\n" + fam
         + "corpora: {c: {spec: python-docs@all}}\n", "t.yaml: defaults.max_tokens: required, no default"),
        ("defaults: {context_length: long, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n" + fam
         + "corpora: {c: {spec: python-docs@all}}\n", "t.yaml: defaults.context_length: expected an integer, got 'long'"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: all}\n" + fam
         + "corpora: {c: {spec: python-docs@all}}\n", "t.yaml: defaults.n_key: must be one of"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n"
         "families: {f: {architecture: gpt2, models: [{repo: a/b, alias: [c]}]}}\n"
         "corpora: {c: {spec: python-docs@all}}\n", "unknown config key(s) families.f.models[0].alias"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n" + fam
         + "corpora: {c: {spec: python-docs@all, spec_env: X}}\n", "t.yaml: corpora.c: needs exactly one of spec, spec_env"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n" + fam
         + "corpora: {c: {spec: python-docs@all, default: perhaps}}\n", "t.yaml: corpora.c.default: expected true or false"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n" + fam
         + "corpora: {c: {spec: python-docs@all, fallback: c}}\n", "t.yaml: corpora.c.fallback: 'c' is not another corpus"),
        ("defaults: {context_length: 16, batch_size: 2, dtype: float32, max_tokens: null, n_key: total}\n"
         "families: {f: {architecture: gpt2, models: []}}\ncorpora: {}\n", "t.yaml: families.f.models: needs a non-empty"),
    ]
    for text, message in cases:
        p.write_text(text)
        with pytest.raises(ValueError) as err:
            pt.load_table(p)
        assert message in str(err.value), (message, str(err.value))


def test_hf_and_wikitext_corpora_are_checked_offline(tmp_path, monkeypatch):
    """E12: `hf:` and `wikitext` specs are not taken for paths: without the datasets package they
    are unavailable with the install hint; with it, a save_to_disk folder is available, a dataset
    is available if its entry is in the local datasets or hub cache, and missing otherwise."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "datasets" else real_find_spec(name, *a))
    entry = pt.CorpusEntry("w", spec="wikitext@test")
    status = pt.check_corpus(entry, {})
    assert not status.available and "datasets package is not installed" in status.reason

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "datasets" else real_find_spec(name, *a))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "dataset_dict.json").write_text("{}")
    assert pt.check_corpus(pt.CorpusEntry("s", spec=f"hf:{saved}@test"), {}).available
    for spec in ("wikitext@test", "hf:org/name:cfg@validation"):
        status = pt.check_corpus(pt.CorpusEntry("k", spec=spec), {})
        assert not status.available and "not in the local datasets cache" in status.reason, spec
    (tmp_path / "hf" / "datasets" / "EleutherAI___wikitext_document_level").mkdir(parents=True)
    (tmp_path / "hf" / "hub" / "datasets--org--name").mkdir(parents=True)
    for spec in ("wikitext@test", "hf:org/name:cfg@validation"):
        assert pt.check_corpus(pt.CorpusEntry("k", spec=spec), {}).available, spec
