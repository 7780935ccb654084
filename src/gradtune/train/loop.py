"""A training run, top to bottom: config, data, model, state, steps, loop, evaluation."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from gradtune.core.data_weights import KINDS, weight_name
from gradtune.core.optimizers import evaluation_params
from gradtune.data.batching import BatchStream, StreamState, batch_shapes, check_fit, pack
from gradtune.files import write_json
from gradtune.seq2seq.objectives import make_losses
from gradtune.train import evaluate
from gradtune.train.checkpoint import save_checkpoint, update_best
from gradtune.train.compile_cache import enable_compilation_cache
from gradtune.train.compute import ComputeMeter
from gradtune.train.config import Config, to_dict
from gradtune.train.data_weights import write_weights
from gradtune.train.guide_batches import GuideBatches
from gradtune.train.inputs import TOKENIZER, RunData, load_data, write_data
from gradtune.train.logbook import Logbook, read_metrics
from gradtune.train.plot import plot_run
from gradtune.train.resolve import resolve
from gradtune.train.resume import NonFiniteLoss, check_run_dir, restore_latest, rewind_metrics
from gradtune.train.setup import build_state
from gradtune.train.signals import stop_requests


def train(
    cfg: Config,
    run_dir: Path,
    progress: bool = True,
    resume: bool = False,
    prepared=None,
    on_eval: Callable[[int, dict, dict], None] | None = None,
) -> dict:
    """Train, evaluate and write every artefact into ``run_dir``; returns the summary.

    With ``resume``, continue from the newest complete checkpoint in ``run_dir``: the run
    then ends exactly as it would have without the interruption. ``prepared``: the run's
    splits, made by the caller (``data.Prepared``), instead of from ``cfg.data``.
    ``on_eval(step, scores, compute)``: called after each evaluation (and its checkpoint),
    with the compute so far; an exception it raises ends the run there (a sweep's pruning).
    """
    start = time.time()
    enable_compilation_cache()
    cfg = resolve(cfg)
    check_run_dir(run_dir, resume)

    # Data, model and training state, all in memory: the run directory is made only once
    # every one of them stands, so that bad input leaves nothing behind.
    data = load_data(cfg, prepared, run_dir / TOKENIZER if resume else None)
    splits, tokenizer, encoded, tags = data.splits, data.tokenizer, data.encoded, data.tags
    d, g, t = cfg.data, cfg.guidance, cfg.train
    shapes = batch_shapes(d.row_len, d.batch_rows, d.batch_tokens)
    check_fit(encoded["train"], shapes)
    dev_batches = list(pack(encoded["dev"], range(len(encoded["dev"])), d.batch_rows, d.row_len))
    bleu_dev = splits["dev"][: t.bleu_examples]
    model_cfg, graphdef, setup, state = build_state(cfg, tokenizer.vocab_size(), tags.counts)
    trainer, guidance = setup.trainer, setup.guided
    weighted = [kind for kind in KINDS if weight_name(kind) in guidance]
    guide_batch = GuideBatches(g.guide_batch, encoded["guide"], d.guide_rows, d.row_len, t.seed)
    eval_counts = jax.jit(make_losses(graphdef)[2])
    host = {"data": [0, 0], "scores": {}}
    if resume:
        state, host = restore_latest(run_dir, state)
        rewind_metrics(run_dir, int(state.step))
    else:
        create_run_dir(run_dir, cfg, data)
    first_step = int(state.step)
    train_stream = BatchStream(
        encoded["train"], shapes, t.seed, start=StreamState(*host["data"]), tags={k: tags.tags[k] for k in weighted}
    )

    # Pure, jitted steps: the dropout key is derived from the step inside the jit.
    root_key = jax.random.key(t.seed)

    def plain(state, batch):
        return trainer.plain_step(state, batch, jax.random.fold_in(root_key, state.step))

    def guided(state, batch, guide):
        new_state, metrics, aux = trainer.guided_step(state, batch, guide, jax.random.fold_in(root_key, state.step))
        return new_state, {**metrics, "meta_learning_rate": setup.meta_schedule(state.step)}, aux

    plain_step = jax.jit(plain, donate_argnums=0)
    guided_step = jax.jit(guided, donate_argnums=0)

    def is_guided(step: int) -> bool:
        return bool(guidance) and step >= g.warmup_steps and (step - g.warmup_steps) % g.guide_every == 0

    def run_eval() -> dict[str, float]:
        params = evaluation_params(cfg.optim.optimizer, state.opt_state, state.params)
        dev = evaluate.loss_and_accuracy(eval_counts, params, dev_batches)
        sources = [e.source for e in bleu_dev]
        hyps = evaluate.translate(
            tokenizer, graphdef, params, sources, d.row_len, beam_size=t.beam_size, alpha=t.length_penalty
        )
        scores = evaluate.bleu_chrf(hyps, [e.target for e in bleu_dev])
        return {
            "dev_loss": dev["loss"],
            "dev_accuracy": dev["accuracy"],
            "dev_bleu": scores["bleu"],
            "dev_chrf": scores["chrf"],
        }

    def checkpoint(step: int, scores: dict) -> None:
        best = update_best(run_dir, step, scores, t.best_metric)
        save_checkpoint(
            run_dir, step, state._asdict(), {"data": list(position), "scores": scores}, t.keep_checkpoints, best
        )

    # The loop. Metrics stay on the device and are read back every log_every steps.
    log = Logbook(run_dir)
    stack = contextlib.ExitStack()
    stack.callback(log.close)
    stack.callback(train_stream.close)
    stop = stack.enter_context(stop_requests())
    pending: list[tuple[int, dict]] = []
    compute = ComputeMeter()  # this process's steps and their flops (a resumed run: since the resume)
    intervals: list[tuple[float, float]] = []  # (tokens, seconds) per log interval; the first compiles
    guided_count = sum(map(is_guided, range(first_step)))
    position, scores, nonfinite_run = tuple(host["data"]), host["scores"], 0
    interval_start = train_start = time.time()
    bar = tqdm(total=t.steps, initial=first_step, disable=not progress, unit="step", dynamic_ncols=True)
    with stack:
        for step in range(first_step, t.steps):
            epoch = train_stream.state().epoch
            batch = next(train_stream)
            position = train_stream.state()  # consumed, not prefetched: where a resume starts
            if guidance and g.reset_every and step and step % g.reset_every == 0:
                state = trainer.reset(state)
            if is_guided(step):
                guide = guide_batch(epoch, guided_count, batch)
                compute.count("guided", guided_step, state, batch, guide)
                state, metrics, aux = guided_step(state, batch, guide)
                guided_count += 1
            else:
                compute.count("plain", plain_step, state, batch)
                state, metrics, aux = plain_step(state, batch)
            pending.append((step + 1, {**metrics, "tokens": aux["tokens"]}))
            # An interruption only checkpoints: evaluating there would log scores that an
            # uninterrupted run does not have.
            evaluating = (step + 1) % t.eval_every == 0 or step + 1 == t.steps
            saving = evaluating or (step + 1) % t.checkpoint_every == 0 or stop.signal is not None
            if (step + 1) % t.log_every == 0 or saving:
                records = jax.device_get(pending)
                pending = []
                interval_tokens = sum(float(m.pop("tokens")) for _, m in records)
                intervals.append((interval_tokens, time.time() - interval_start))
                for s, m in records:
                    log.write(s, m)
                    nonfinite_run = nonfinite_run + 1 if m["skipped"] else 0
                    if nonfinite_run >= t.max_nonfinite:
                        raise NonFiniteLoss(run_dir, s, nonfinite_run)
                latest = records[-1][1]
                bar.set_postfix(
                    loss=f"{latest['train_loss']:.3f}",
                    lr=f"{latest['learning_rate']:.2e}",
                    tok_s=f"{interval_tokens / max(intervals[-1][1], 1e-9):,.0f}",
                )
                bar.update(len(records))
                interval_start = time.time()
            if evaluating:
                scores = run_eval()
                log.write(step + 1, scores)
                if progress:
                    bar.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            if saving:
                checkpoint(step + 1, scores if evaluating else {})
                interval_start = time.time()
            if evaluating and on_eval is not None:
                on_eval(step + 1, scores, {**compute.summary(), "train_seconds": time.time() - train_start})
            if stop.signal is not None:
                break
    bar.close()
    train_time = time.time() - train_start
    if stop.signal is not None and int(state.step) < t.steps:
        print(
            f"gradtune: stopped by {stop.name} after step {int(state.step)}; checkpoint saved. "
            f"Resume with: gradtune train --resume {run_dir}",
            file=sys.stderr,
        )

    # Artefacts: learned values, plot, summary.
    records = read_metrics(run_dir)
    final = trainer.values(state.raw)
    write_learned_values(run_dir, records, final, guidance)
    weights = write_weights(run_dir, {k: v for k, v in final.items() if k in guidance}, tags, splits["train"])
    plot_run(
        records,
        run_dir / "run.png",
        title=f"{d.corpus}, {model_cfg.d_model}d, guided: {', '.join(guidance) or 'none'}",
        row_names={"corpus_weights": tags.corpus_names, "bucket_weights": tags.bucket_names},
    )
    summary = summarize(records, scores, guidance)
    summary.update(weights)
    summary.update(
        run_dir=str(run_dir),
        steps=int(state.step),
        finished=int(state.step) == t.steps,
        beam_size=t.beam_size,
        train_pairs=len(splits["train"]),
        guide_pairs=len(splits["guide"]),
        dev_pairs=len(splits["dev"]),
        tokens_per_second=tokens_per_second(intervals),
        compute=compute.summary(),
        train_seconds=train_time,
        total_seconds=time.time() - start,
    )
    write_json(run_dir / "summary.json", summary)
    return summary


def create_run_dir(run_dir: Path, cfg: Config, data: RunData) -> None:
    """The new run's directory with its resolved config and data records; removed again if
    writing any of them fails."""
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_json(run_dir / "config.json", to_dict(cfg))
        write_data(run_dir, data)
    except BaseException:
        if not existed:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def tokens_per_second(intervals: list[tuple[float, float]]) -> float:
    """Target tokens per second of training steps, compilation and evaluation excluded."""
    steady = intervals[1:] or intervals
    return sum(t for t, _ in steady) / max(sum(s for _, s in steady), 1e-9)


def write_learned_values(run_dir: Path, records: list[dict], final: dict, guided: tuple[str, ...]) -> None:
    """``learned_values.json``: final values (example weights: see example_weights.tsv), trajectories."""
    trajectories = {}
    for name in guided:
        keys = sorted(
            {k for r in records for k in r if k == f"value/{name}" or k.startswith(f"value/{name}/")},
            key=lambda k: int(k.rsplit("/", 1)[1]) if k.count("/") == 2 else -1,
        )
        for key in keys:
            trajectories[key.removeprefix("value/")] = [[r["step"], r[key]] for r in records if key in r]
    values = {k: np.asarray(v).tolist() for k, v in final.items() if k != "example_weights"}
    payload = {"guided": list(guided), "final": values, "trajectory": trajectories}
    write_json(run_dir / "learned_values.json", payload)


def summarize(records: list[dict], final_scores: dict, guided: tuple[str, ...]) -> dict:
    summary = dict(final_scores)
    for name in guided:
        ys = [r[f"value/{name}"] for r in records if r.get(f"value/{name}") is not None]
        if ys:
            summary[f"{name}_trajectory"] = {"start": ys[0], "min": min(ys), "max": max(ys), "end": ys[-1]}
    return summary
