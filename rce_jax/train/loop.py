"""``train(config, out_dir)``: one run from its config to an exported Hugging Face model.

Output folder::

    config.json        the resolved config (a rerun must match it, save/keep settings aside)
    metrics.jsonl      one row per logged step (train metrics; ``eval`` at evaluation steps)
    checkpoints/       orbax checkpoints (every ``save_every`` steps and the last; ``keep``)
    model/             the Hugging Face export: config.json, model.safetensors, tokenizer
    figures/           training dynamics (CE, EE, SA, Conf vs step) and p_e evolution per eval set
    summary.json       sizes, tokens, loss path, final metrics, timings

Rerunning the same command resumes from the latest checkpoint (see ``checkpoint.py``); a run
that finished is not trained again. SIGTERM or SIGINT during training saves a checkpoint of the
step just completed (every host the same step) and raises ``rce_jax.preempt.Preempted``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from ..data import load_corpus
from ..io import check_output_dir, write_json
from ..models import init_model, param_counts, save_pretrained
from ..preempt import Preempted, preemption_guard, requested, signal_name
from ..sharding import DATA, check_hosts_agree, make_mesh, shard_batch
from .checkpoint import Checkpoints, MetricsLog
from .config import ConfigError, TrainConfig, diff_keys, identity
from .data import TrainStream
from .evals import build_eval_sets, run_evals, write_training_figures
from .presets import build_model_config
from .state import init_state, make_optimizer
from .step import loss_kernel_plan, make_loss_fn, make_train_step, resolve_loss
from .tokenizer import get_tokenizer


@dataclasses.dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    summary: dict
    rows: list  # the metrics log
    model: object  # the trained CausalLM (parameters as after the last step)


def _say(msg: str, verbose: bool) -> None:
    if verbose and jax.process_index() == 0:
        print(f"[rce-jax train] {msg}", flush=True)


def _check_out_dir(out: Path, config: TrainConfig, restart: bool, writer: bool) -> None:
    saved = out / "config.json"
    if restart:
        if writer:
            for name in ("checkpoints", "metrics.jsonl", "summary.json", "model", "figures",
                         "config.json"):
                p = out / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    elif saved.exists():
        old = TrainConfig.from_dict(json.loads(saved.read_text()))
        changed = diff_keys(identity(old), identity(config))
        if changed:
            raise ConfigError(
                f"{out} holds a run with another configuration (differs in: {', '.join(changed)}); "
                "use another output folder, or --restart to discard that run")
    if writer:
        write_json(saved, config.to_dict())
    if jax.process_count() > 1:  # no process looks for checkpoints before the folder is ready
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("rce-jax train: output folder ready")


def make_mesh_for(config: TrainConfig, mesh):
    """``mesh="auto"``: a (data, model) mesh over all devices when there are several."""
    if mesh != "auto":
        return mesh
    if jax.device_count() == 1 and config.model_parallel == 1:
        return None
    return make_mesh(model=config.model_parallel)


def train(config: TrainConfig, out_dir, *, mesh="auto", progress: bool = True, verbose: bool = True,
          restart: bool = False, figures: bool = True, on_step=None) -> TrainResult:
    """Train (or resume, or just return) the run of ``config`` in ``out_dir``.

    ``mesh``: "auto", None (one device) or a ``jax.sharding.Mesh`` with axes (data, model).
    ``figures``: write the training-dynamics figures of the eval sets into ``figures/``.
    ``on_step(step, row)`` is called after every step (``row``: the metrics row written at this
    step, or None), after the step's checkpoint was started.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    writer = jax.process_index() == 0
    if writer:
        check_output_dir(out, "--out")  # before a corpus is read
    _check_out_dir(out, config, restart, writer)
    mesh = make_mesh_for(config, mesh)
    data_size = 1 if mesh is None else mesh.shape[DATA]
    for what, b in (("batch_size", config.batch_size), ("eval.batch_size", config.eval.batch_size)):
        if b % data_size:
            raise ConfigError(f"{what}: {b} rows do not split over the {data_size} data-parallel devices")

    train_corpora = [load_corpus(s, text_field=config.data.text_field) for s in config.data.train]
    tokenizer = get_tokenizer(config.tokenizer, train_corpora, verbose=verbose)
    model_config = build_model_config(config.model, tokenizer, config.context_length)
    stream = TrainStream.from_corpora(train_corpora, tokenizer, seq_len=config.context_length,
                                      seed=config.seed, text_field=config.data.text_field,
                                      cache_dir=config.data.cache_dir)
    dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
    model = init_model(model_config, seed=config.seed, dtype=dtype, param_dtype=param_dtype,
                       mesh=mesh, attention_impl=config.model.attention_impl)
    counts = param_counts(model, model_config)
    graphdef, params = nnx.split(model)
    del model
    tx, schedule = make_optimizer(config.optim, config.steps, model_config.hidden_size)
    state, shardings = init_state(params, tx, family=model_config.family, mesh=mesh, fsdp=config.fsdp)
    tokens_per_step = config.batch_size * config.context_length
    head, impl = resolve_loss(config.loss, tokens_per_step=tokens_per_step,
                              vocab_size=model_config.vocab_size)
    loss_plan = loss_kernel_plan(head=head, impl=impl, tokens_per_step=tokens_per_step,
                             vocab_size=model_config.vocab_size,
                             hidden_size=model_config.hidden_size, dtype=dtype, mesh=mesh)
    step_fn = make_train_step(make_loss_fn(graphdef, lam=config.loss.lam, head=head, impl=impl, mesh=mesh), tx,
                              schedule, shardings=shardings, mesh=mesh)
    _say(f"{config.model.preset or 'model'}: {counts['non_embedding']:,} non-embedding / "
         f"{counts['total']:,} parameters, vocabulary {model_config.vocab_size}, "
         f"{stream.num_tokens:,} training tokens, loss {head} logits with impl={impl} "
         f"(runs {loss_plan.impl}{', skipped ' + str(dict(loss_plan.skipped)) if loss_plan.skipped else ''}), "
         f"{'mesh ' + str(dict(mesh.shape)) if mesh is not None else 'one device'}", verbose)

    ckpts = Checkpoints(out / "checkpoints", keep=config.keep)
    log = MetricsLog(out / "metrics.jsonl", writer=writer)
    start = ckpts.latest_step() or 0
    check_hosts_agree(start, "hosts see different checkpoints: the output folder must be on "
                      "storage that every host sees")
    if start:
        state, meta = ckpts.restore(start, state)
        if int(state["step"]) != start:
            raise RuntimeError(f"checkpoint {start} holds step {int(state['step'])}")
        _say(f"resuming from the checkpoint at step {start}"
             + (" (the run had finished; exporting again)" if start == config.steps else ""), verbose)
    log.truncate_after(start)
    eval_sets = build_eval_sets(config, tokenizer) if config.eval.every else []
    kernel_plans = {}  # per eval set: what the scoring step runs, planned once

    def eval_row(step):
        return run_evals(eval_sets, graphdef, state["params"], mesh, config.eval,
                         model_config.vocab_size, context_length=config.context_length,
                         identity=identity, step=step, dtype=config.dtype, kernel_plans=kernel_plans)

    # The export folder relative to the run folder: metrics rows do not depend on where the run is.
    identity = {"model": config.model.preset or "custom", "model_path": "model",
                "family": model_config.family, "counts": counts}

    if eval_sets and start == 0:
        log.append({"step": 0, "eval": eval_row(0)})
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=config.model.preset or "train",
               disable=not progress or not writer, dynamic_ncols=True)
    t_last, tokens_last = time.perf_counter(), start * tokens_per_step
    with preemption_guard():
        for k in range(start, config.steps):
            s = k + 1
            # every process builds the same global batch (a function of seed and step) and
            # places the rows its devices hold
            state, metrics = step_fn(state, shard_batch(stream.batch(k, config.batch_size), mesh))
            do_eval = bool(eval_sets) and (s % config.eval.every == 0 or s == config.steps)
            row = None
            if s % config.log_every == 0 or do_eval or s == config.steps:
                m = jax.device_get(metrics)
                now = time.perf_counter()
                row = {"step": s, "loss": float(m["loss"]), "ce": float(m["ce"]), "conf": float(m["conf"]),
                       "lr": float(m["lr"]), "grad_norm": float(m["grad_norm"]),
                       "scored_tokens": int(m["scored_tokens"]), "tokens": s * tokens_per_step,
                       "tokens_per_s": (s * tokens_per_step - tokens_last) / max(now - t_last, 1e-9),
                       "elapsed_s": now - t_start}
                if not np.isfinite(row["loss"]):
                    raise FloatingPointError(f"the loss is {row['loss']} at step {s}; lower optim.lr?")
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                if do_eval:
                    row["eval"] = eval_row(s)
                log.append(row)
                t_last, tokens_last = time.perf_counter(), s * tokens_per_step
            saved = s % config.save_every == 0 or s == config.steps
            if saved:
                ckpts.save(s, state, {"step": s, "config": config.to_dict()})
            bar.update(1)
            if on_step is not None:
                on_step(s, row)
            signum = requested() if s < config.steps else None
            if signum:
                if not saved:
                    ckpts.save(s, state, {"step": s, "config": config.to_dict()})
                bar.close()
                ckpts.close()  # waits until the checkpoint is committed
                raise Preempted(signum, f"{signal_name(signum)}: saved the checkpoint of step {s} of "
                                f"{config.steps} in {ckpts.folder}; rerun the same command to resume")
    bar.close()
    ckpts.close()

    model_dir = out / "model"
    trained = nnx.merge(graphdef, state["params"])
    save_pretrained(trained, model_config, model_dir, tokenizer)
    rows = log.rows() if writer else []
    figure_paths = write_training_figures(rows, out / "figures") if writer and figures else []
    last = next((r for r in reversed(rows) if "loss" in r), {})
    last_eval = next((r["eval"] for r in reversed(rows) if "eval" in r), None)
    summary = {
        "model": config.model.preset or "custom", "family": model_config.family,
        "hidden_size": model_config.hidden_size, "num_layers": model_config.num_layers,
        "num_heads": model_config.num_heads, "vocab_size": model_config.vocab_size,
        "n_params": counts["total"], "n_params_non_embedding": counts["non_embedding"],
        "steps": config.steps, "batch_size": config.batch_size, "context_length": config.context_length,
        "tokens_trained": config.steps * tokens_per_step, "training_stream_tokens": stream.num_tokens,
        "epochs": config.steps * config.batch_size / stream.num_chunks,
        "loss_head": head, "loss_impl": impl, "lam": config.loss.lam,
        "peak_lr": config.optim.peak_lr(model_config.hidden_size),
        "final_train": last, "final_eval": last_eval, "figures": [str(p) for p in figure_paths],
        "devices": jax.device_count(), "mesh": None if mesh is None else dict(mesh.shape),
        "resumed_from_step": start, "session_time_s": time.perf_counter() - t_start,
    }
    if writer:
        write_json(out / "summary.json", summary)
    return TrainResult(out, model_dir, summary, rows, trained)
