"""A training run, top to bottom: config, data, model, state, steps, loop, evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from gradtune.data.batching import BatchStream, batch_shapes, epoch_order, pack
from gradtune.errors import ConfigError
from gradtune.seq2seq.objectives import make_losses
from gradtune.train import evaluate
from gradtune.train.checkpoint import save_state
from gradtune.train.config import Config, to_dict
from gradtune.train.inputs import prepare_data
from gradtune.train.logbook import Logbook, read_metrics
from gradtune.train.plot import plot_run
from gradtune.train.setup import build_state


def train(cfg: Config, run_dir: Path, progress: bool = True) -> dict:
    """Train, evaluate and write every artefact into ``run_dir``; returns the summary."""
    start = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "summary.json").exists() or (run_dir / "metrics.jsonl").exists():
        raise ConfigError(f"{run_dir} already holds a run; choose another --run-dir")

    # Data: splits, tokenizer, a prefetched stream of packed batches, a fixed guide batch.
    splits, tokenizer, encoded = prepare_data(cfg, run_dir)
    d = cfg.data
    shapes = batch_shapes(d.row_len, d.batch_rows, d.batch_tokens)
    train_stream = BatchStream(encoded["train"], shapes, cfg.train.seed)
    guide_order = epoch_order(len(encoded["guide"]), cfg.train.seed, 0)
    guide_batch = next(pack(encoded["guide"], guide_order, d.guide_rows, d.row_len))
    dev_batches = list(pack(encoded["dev"], range(len(encoded["dev"])), d.batch_rows, d.row_len))
    bleu_dev = splits["dev"][: cfg.train.bleu_examples]

    # Model and training state.
    model_cfg, graphdef, setup, state = build_state(cfg, tokenizer.vocab_size())
    trainer = setup.trainer
    eval_counts = make_losses(graphdef)[2]
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    # Pure, jitted steps: the dropout key is derived from the step inside the jit.
    root_key = jax.random.key(cfg.train.seed)

    def plain(state, batch):
        return trainer.plain_step(state, batch, jax.random.fold_in(root_key, state.step))

    def guided(state, batch, guide):
        return trainer.guided_step(state, batch, guide, jax.random.fold_in(root_key, state.step))

    plain_step = jax.jit(plain, donate_argnums=0)
    guided_step = jax.jit(guided, donate_argnums=0)
    eval_counts = jax.jit(eval_counts)

    def run_eval(step: int) -> dict[str, float]:
        dev = evaluate.loss_and_accuracy(eval_counts, state.params, dev_batches)
        hyps = evaluate.translate(tokenizer, graphdef, state.params, [e.source for e in bleu_dev], d.row_len)
        scores = evaluate.bleu_chrf(hyps, [e.target for e in bleu_dev])
        return {
            "dev_loss": dev["loss"],
            "dev_accuracy": dev["accuracy"],
            "dev_bleu": scores["bleu"],
            "dev_chrf": scores["chrf"],
        }

    # The loop. Metrics stay on the device and are read back every log_every steps.
    log = Logbook(run_dir)
    steps, guidance = cfg.train.steps, setup.guided
    pending: list[tuple[int, dict]] = []
    intervals: list[tuple[float, float]] = []  # (tokens, seconds) per log interval; the first compiles
    interval_start = time.time()
    bar = tqdm(total=steps, disable=not progress, unit="step", dynamic_ncols=True)
    train_start = time.time()
    for step in range(steps):
        batch = next(train_stream)
        if guidance and step >= cfg.guidance.warmup_steps:
            state, metrics, aux = guided_step(state, batch, guide_batch)
        else:
            state, metrics, aux = plain_step(state, batch)
        pending.append((step + 1, {**metrics, "tokens": aux["tokens"]}))
        last = step + 1 == steps
        if (step + 1) % cfg.train.log_every == 0 or last:
            host = jax.device_get(pending)
            interval_tokens = sum(float(m.pop("tokens")) for _, m in host)
            intervals.append((interval_tokens, time.time() - interval_start))
            tokens_per_s = interval_tokens / max(intervals[-1][1], 1e-9)
            for s, m in host:
                log.write(s, m)
            pending, interval_start = [], time.time()
            latest = host[-1][1]
            bar.set_postfix(
                loss=f"{latest['train_loss']:.3f}", lr=f"{latest['learning_rate']:.2e}", tok_s=f"{tokens_per_s:,.0f}"
            )
            bar.update(len(host))
        if (step + 1) % cfg.train.eval_every == 0 or last:
            scores = run_eval(step + 1)
            log.write(step + 1, scores)
            bar.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            interval_start = time.time()
    bar.close()
    train_stream.close()
    train_time = time.time() - train_start
    log.close()

    # Artefacts: checkpoint, learned values, plot, summary.
    save_state(run_dir / "checkpoint", state._asdict())
    records = read_metrics(run_dir)
    write_learned_values(run_dir, records, trainer.values(state.raw), guidance)
    plot_run(
        records, run_dir / "run.png", title=f"{d.corpus}, {model_cfg.d_model}d, guided: {', '.join(guidance) or 'none'}"
    )
    summary = summarize(records, scores, guidance)
    summary.update(
        run_dir=str(run_dir),
        steps=steps,
        train_pairs=len(splits["train"]),
        guide_pairs=len(splits["guide"]),
        dev_pairs=len(splits["dev"]),
        tokens_per_second=tokens_per_second(intervals),
        train_seconds=train_time,
        total_seconds=time.time() - start,
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def tokens_per_second(intervals: list[tuple[float, float]]) -> float:
    """Target tokens per second of training steps, compilation and evaluation excluded."""
    steady = intervals[1:] or intervals
    return sum(t for t, _ in steady) / max(sum(s for _, s in steady), 1e-9)


def write_learned_values(run_dir: Path, records: list[dict], final: dict, guided: tuple[str, ...]) -> None:
    trajectories = {name: [[r["step"], r[f"value/{name}"]] for r in records if f"value/{name}" in r] for name in guided}
    values = {k: np.asarray(v).tolist() for k, v in final.items()}
    payload = {"guided": list(guided), "final": values, "trajectory": trajectories}
    (run_dir / "learned_values.json").write_text(json.dumps(payload) + "\n")


def summarize(records: list[dict], final_scores: dict, guided: tuple[str, ...]) -> dict:
    summary = dict(final_scores)
    for name in guided:
        ys = [r[f"value/{name}"] for r in records if r.get(f"value/{name}") is not None]
        if ys:
            summary[f"{name}_trajectory"] = {"start": ys[0], "min": min(ys), "max": max(ys), "end": ys[-1]}
    return summary
