"""A ladder: several model sizes trained with one recipe, evaluated, fitted and reported.

For each preset: ``train`` (same data, tokenizer, steps, batch, schedule and seed for all;
resumable), then ``rce_jax.evaluate.evaluate`` of the exported Hugging Face folder on every
held-out corpus (the very path of ``rce-jax eval``: result JSONs in its format under
``results/``, so ``rce-jax scaling OUT/results`` works on them), then ``scaling_report`` per
dataset, the figures and ``report.md``. Rerunning skips the models already trained and the
results already written.

With ``seeds = K > 1`` every rung is trained K times, with seeds ``recipe.seed + s`` (initialisation
and data order both change); seed 0 is the ladder the fits and figures show, seeds 1.. give the
seed-to-seed spread beside the other intervals, and a finding is stated only if it holds in
every seed.

Output folder: ``runs/<model>/`` (training runs), ``results/`` (eval JSONs), ``figures/``,
``scaling.{md,csv,json}``, ``report.md``, ``report.json``, ``ladder.json`` (the spec); with seeds,
``runs/seed<s>/<model>/`` and ``results_seeds/seed<s>/``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..config import from_dict, to_dict
from ..evaluate import EvalConfig, evaluate, result_path
from ..io import write_json
from ..plots import write_figures
from ..report import scaling_report
from .checkpoint import MetricsLog
from .config import ConfigError, TrainConfig, diff_keys, identity
from .evals import write_training_figures
from .loop import train
from .report import build_report


@dataclasses.dataclass(frozen=True)
class LadderSpec:
    """``recipe``: the TrainConfig every rung shares (each rung sets its own ``model.preset``). ``dynamics``: held-out evaluation every this many steps during training of the
    largest model (0: none), cut at ``dynamics_max_tokens``, for the training-dynamics figures.
    ``eval_batch_size`` / ``eval_max_tokens``: the final evaluations (None: whole corpora)."""

    name: str
    presets: tuple[str, ...]
    recipe: TrainConfig
    eval_batch_size: int = 8
    eval_max_tokens: int | None = None
    dynamics: int = 0
    dynamics_max_tokens: int | None = 4096
    seeds: int = 1  # training runs per rung (seeds recipe.seed + 0 .. seeds - 1)

    def __post_init__(self):
        if self.seeds < 1:
            raise ConfigError(f"ladder {self.name}: --seeds must be at least 1, got {self.seeds}")
        if len(self.presets) < 2:
            raise ConfigError(f"ladder {self.name}: needs at least 2 presets, got {self.presets}")
        if len(set(self.presets)) != len(self.presets):
            raise ConfigError(f"ladder {self.name}: a preset is listed twice")

    def run_config(self, preset: str, *, largest: bool, seed_index: int = 0) -> TrainConfig:
        ev = dataclasses.replace(self.recipe.eval, every=self.dynamics if largest and seed_index == 0 else 0,
                                 max_tokens=self.dynamics_max_tokens, batch_size=self.eval_batch_size)
        model = dataclasses.replace(self.recipe.model, preset=preset, hf_config=None)
        return dataclasses.replace(self.recipe, model=model, eval=ev, seed=self.recipe.seed + seed_index)

    @classmethod
    def from_dict(cls, d: dict) -> LadderSpec:
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return to_dict(self)


def _check_spec(out: Path, spec: LadderSpec) -> None:
    saved = out / "ladder.json"
    if saved.exists():
        old = json.loads(saved.read_text())
        new = spec.to_dict()
        # The recipe may change exactly what a single run may change (config.RESUMABLE_CHANGES).
        old["recipe"] = identity(TrainConfig.from_dict(old["recipe"]))
        new["recipe"] = identity(spec.recipe)
        old.pop("seeds", None), new.pop("seeds")  # more (or fewer) seeds add runs, change none
        changed = diff_keys(old, new)
        if changed:
            raise ConfigError(f"{out} holds another ladder (differs in: {', '.join(changed)}); "
                              "use another output folder")
    write_json(saved, spec.to_dict())


def run_ladder(spec: LadderSpec, out_dir, *, progress: bool = True, verbose: bool = True,
               command: str = "", title: str | None = None) -> dict:
    """Train, evaluate, fit and report the ladder in ``out_dir``; returns ``report.json``'s dict."""
    t0 = time.perf_counter()
    cpu0 = time.process_time()  # user + sys of every thread of this process
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_spec(out, spec)
    largest = spec.presets[-1]
    eval_config = EvalConfig(context_length=spec.recipe.context_length, batch_size=spec.eval_batch_size,
                             max_tokens=spec.eval_max_tokens, text_field=spec.recipe.data.text_field)
    summaries, timings, records, expected = {}, {}, [], set()
    seed_records = {s: [] for s in range(1, spec.seeds)}
    for s in range(spec.seeds):
        runs = out / "runs" if s == 0 else out / "runs" / f"seed{s}"
        results = out / "results" if s == 0 else out / "results_seeds" / f"seed{s}"
        tag = "" if s == 0 else f" seed{s}"
        for i, preset in enumerate(spec.presets, start=1):
            run_dir = runs / preset
            done = (run_dir / "summary.json").exists() and (run_dir / "model" / "config.json").exists()
            if verbose:
                print(f"[rce-jax {spec.name}] model {i}/{len(spec.presets)}: {preset}"
                      + (f" (seed {spec.recipe.seed + s}, {s + 1}/{spec.seeds})" if spec.seeds > 1 else "")
                      + f"{' (trained before; skipping)' if done else ''}", flush=True)
            t_train = time.perf_counter()
            if done:
                summary = json.loads((run_dir / "summary.json").read_text())
            else:
                summary = train(spec.run_config(preset, largest=preset == largest, seed_index=s), run_dir,
                                progress=progress, verbose=verbose, figures=False).summary
                timings[f"train {preset}{tag}"] = time.perf_counter() - t_train
            if s == 0:
                summaries[preset] = summary
            t_eval = time.perf_counter()
            for data in spec.recipe.data.eval:
                rec = evaluate(run_dir / "model", data, results, eval_config, model_name=preset,
                               cache_dir=spec.recipe.data.cache_dir, progress=progress)
                (records if s == 0 else seed_records[s]).append(rec)
                if s == 0:
                    expected.add(str(result_path(out / "results", preset, rec["dataset"], eval_config,
                                                 model_path=run_dir / "model", data_spec=data)))
            timings[f"eval {preset}{tag}"] = time.perf_counter() - t_eval
    stale = [p for p in (out / "results").glob("*.json") if str(p) not in expected]
    if stale:
        raise ConfigError(f"{out / 'results'} holds results of models outside this ladder: "
                          f"{', '.join(p.name for p in stale)}")
    scaling = scaling_report(records)
    scaling.write(out)
    seed_scalings = [scaling_report(seed_records[s]) for s in sorted(seed_records)]
    figures = write_figures(scaling, records, out / "figures")
    figures += write_training_figures(MetricsLog(out / "runs" / largest / "metrics.jsonl").rows(),
                                      out / "figures")
    wall = time.perf_counter() - t0
    timings["cpu_s"] = time.process_time() - cpu0
    report = build_report(spec, summaries, records, scaling, figures=figures, out_dir=out,
                          wall_s=wall, timings=timings, command=command, title=title,
                          seed_scalings=seed_scalings)
    if verbose:
        print(f"[rce-jax {spec.name}] wrote {out / 'report.md'} ({wall:.0f} s)", flush=True)
    return report
