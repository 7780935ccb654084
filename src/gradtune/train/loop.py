"""A training run, top to bottom: config, data, model, state, steps, loop, evaluation, artefacts."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from gradtune.core import TrainState
from gradtune.core.optimizers import evaluation_params
from gradtune.core.step import parse_value_key, value_key
from gradtune.data.batching import START, BatchStream, StreamState, batch_shapes, check_fit, pack
from gradtune.files import write_json
from gradtune.seq2seq.objectives import KINDS, make_losses, weight_name
from gradtune.train import evaluate
from gradtune.train.checkpoint import complete_steps, remove_checkpoint, save_checkpoint, update_best
from gradtune.train.compile_cache import enable_compilation_cache
from gradtune.train.compute import ComputeMeter
from gradtune.train.config import Config, flat, to_dict
from gradtune.train.data_weights import write_weights
from gradtune.train.distributed import any_process, is_primary, sync
from gradtune.train.guidance import Setup
from gradtune.train.guide_batches import GuideBatches
from gradtune.train.inputs import TOKENIZER, RunData, load_data, model_vocab_size, write_data
from gradtune.train.logbook import Logbook, read_metrics
from gradtune.train.mesh import (
    batch_sharding,
    check_batches,
    describe,
    make_mesh,
    place,
    put,
    state_shardings,
)
from gradtune.train.plot import plot_run
from gradtune.train.resolve import resolve
from gradtune.train.restart import Restart, is_turn, peak_rate, restart_multiplier, spent_steps
from gradtune.train.resume import NonFiniteLoss, check_run_dir, restore_latest, rewind_metrics
from gradtune.train.setup import build_state, initial_params, parse_init_from
from gradtune.train.signals import stop_requests
from gradtune.train.steps import Steps, make_steps

OnEval = Callable[[int, dict, dict], None]
SCORES = ("dev_loss", "dev_accuracy", "dev_bleu", "dev_chrf")  # a run's final scores


def train(
    cfg: Config,
    run_dir: Path,
    progress: bool = True,
    resume: bool = False,
    prepared=None,
    on_eval: OnEval | None = None,
) -> dict:
    """Train, evaluate and write every artefact into ``run_dir``; returns the summary.

    With ``resume``, continue from the newest complete checkpoint in ``run_dir``: the run
    then ends exactly as it would have without the interruption. ``prepared``: the run's
    splits, made by the caller (``data.Prepared``), instead of from ``cfg.data``.
    ``on_eval(step, scores, compute)``: called after each evaluation (and its checkpoint),
    with the compute so far; an exception it raises ends the run there (a sweep's pruning).
    """
    start = time.time()
    progress = progress and is_primary()
    enable_compilation_cache()
    cfg = resolve(cfg)
    if is_primary():  # the others would see the directory process 0 makes
        check_run_dir(run_dir, resume)
    # Everything is built in memory first: bad input leaves no run directory behind.
    session = build_session(cfg, run_dir, prepared, resume)
    state, host = session.initial, HostState(START, {})
    if resume:
        state, saved = restore_latest(run_dir, state)
        restarts = tuple(Restart(**r) for r in saved.get("restarts", ()))
        host = HostState(StreamState(*saved["data"]), saved["scores"], restarts)
        if is_primary():
            rewind_metrics(run_dir, int(state.step))
    elif is_primary():
        create_run_dir(run_dir, cfg, session.data)
    sync("run directory ready")
    result = run_steps(session, state, host, progress, on_eval)
    if not is_primary():
        return {}
    if result.stopped_by is not None and int(result.state.step) < cfg.train.steps:
        print(
            f"gradtune: stopped by {result.stopped_by} after step {int(result.state.step)}; checkpoint saved. "
            f"Resume with: gradtune train --resume {run_dir}",
            file=sys.stderr,
        )
    return write_artefacts(session, result, start)


class HostState(NamedTuple):
    """The host side of a checkpoint: where the training data stands, the latest scores, the
    run's restarts so far (``guidance.warmup_restarts``)."""

    data: StreamState
    scores: dict
    restarts: tuple[Restart, ...] = ()


@dataclass(frozen=True)
class Session:
    """What a run needs besides its state, all built before its directory exists."""

    cfg: Config
    run_dir: Path
    data: RunData
    model: Any  # the model's config
    graphdef: Any
    setup: Setup
    mesh: Mesh
    steps: Steps
    initial: TrainState
    shapes: list[tuple[int, int]]
    guide_batches: GuideBatches
    dev_batches: list
    eval_counts: Callable

    def is_guided(self, step: int, spent: int = 0) -> bool:
        g = self.cfg.guidance
        return (bool(self.setup.guided) and step >= g.warmup_steps and not self.has_ended(step, spent)
                and (step - g.warmup_steps) % g.guide_every == 0)  # fmt: skip

    def has_ended(self, step: int, spent: int = 0) -> bool:
        """Guidance is over (``guidance.until_step``): the values are held for good. ``spent``:
        the steps of attempts abandoned by restarts, which come out of the guided ones."""
        return bool(self.cfg.guidance.until_step) and step >= self.cfg.guidance.until_step - spent


def build_session(cfg: Config, run_dir: Path, prepared, resume: bool) -> Session:
    """Data, tokenizer (a resumed run's own), model, trainer, jitted steps and initial state."""
    d = cfg.data
    shapes = batch_shapes(d.row_len, d.batch_rows, d.batch_tokens)
    mesh = make_mesh(cfg.train.mesh)
    train_rows = {"data.batch_rows": d.batch_rows} if not d.batch_tokens else {
        f"data.batch_tokens / {length}": rows for rows, length in shapes}  # fmt: skip
    check_batches(mesh, {**train_rows, "data.guide_rows": d.guide_rows, "data.batch_rows (dev)": d.batch_rows})
    source = None if resume or not cfg.train.init_from else parse_init_from(cfg.train.init_from)
    data = load_data(cfg, prepared, run_dir / TOKENIZER if resume else source.run_dir / TOKENIZER if source else None)
    check_fit(data.encoded["train"], shapes)
    model, graphdef, setup, state = build_state(cfg, model_vocab_size(cfg, data.tokenizer), data.tags.counts)
    if source is not None:  # the source run's parameters; fresh optimizer state and guided values
        state = setup.trainer.init(initial_params(source, state.params))
    state = place(state, state_shardings(mesh, state))
    rows = batch_sharding(mesh)
    return Session(
        cfg=cfg,
        run_dir=run_dir,
        data=data,
        model=model,
        graphdef=graphdef,
        setup=setup,
        mesh=mesh,
        steps=make_steps(setup, cfg.train.seed, mesh, state),
        initial=state,
        shapes=shapes,
        guide_batches=GuideBatches(
            cfg.guidance.guide_batch, data.encoded["guide"], d.guide_rows, d.row_len, cfg.train.seed
        ),
        dev_batches=[
            put(b, rows) for b in pack(data.encoded["dev"], range(len(data.encoded["dev"])), d.batch_rows, d.row_len)
        ],
        eval_counts=jax.jit(make_losses(graphdef).eval_counts),
    )


def evaluate_dev(session: Session, state: TrainState) -> dict[str, float]:
    """Dev loss and token accuracy, and BLEU and chrF of the first ``bleu_examples`` dev pairs."""
    cfg, t = session.cfg, session.cfg.train
    params = evaluation_params(cfg.optim.optimizer, state.opt_state, state.params)
    dev = evaluate.loss_and_accuracy(session.eval_counts, params, session.dev_batches)
    if cfg.data.objective != "translation":  # the held-out loss of the objective; nothing to translate
        return {"dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"]}
    examples = session.data.splits["dev"][: t.bleu_examples]
    hyps = evaluate.translate(
        session.data.tokenizer, session.graphdef, params, [e.source for e in examples], cfg.data.row_len,
        beam_size=t.beam_size, alpha=t.length_penalty,
    )  # fmt: skip
    scores = evaluate.bleu_chrf(hyps, [e.target for e in examples])
    return {"dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"], "dev_bleu": scores["bleu"],
            "dev_chrf": scores["chrf"]}  # fmt: skip


def save(session: Session, step: int, state: TrainState, host: HostState) -> None:
    """A checkpoint of ``state`` at ``step``, the newest kept and the best by ``train.best_metric``."""
    t = session.cfg.train
    best = update_best(session.run_dir, step, host.scores, t.best_metric) if is_primary() else None
    payload = {"data": list(host.data), "scores": host.scores, "restarts": [r.to_json() for r in host.restarts]}
    save_checkpoint(session.run_dir, step, state._asdict(), payload, t.keep_checkpoints, best, is_primary())


@dataclass
class LoopResult:
    state: TrainState
    scores: dict  # of the last evaluation
    intervals: list[tuple[float, float]]  # (target tokens, seconds) per log interval; the first compiles
    compute: ComputeMeter  # every step taken, those of attempts abandoned by restarts too
    seconds: float
    stopped_by: str | None  # the signal that stopped the run early
    restarts: tuple[Restart, ...] = ()


def run_steps(session: Session, state: TrainState, host: HostState, progress: bool, on_eval: OnEval | None):
    """The loop, from ``state`` to ``train.steps``. Metrics stay on the device and are read
    back every ``log_every`` steps; an interruption only checkpoints (evaluating there would
    log scores that an uninterrupted run does not have). With ``guidance.warmup_restarts`` the
    learning rate is read back at each guided step of the warm-up, and the warm-up rule's first
    lowering step starts the run again from step 0 (``train/restart.py``)."""
    cfg, setup, steps = session.cfg, session.setup, session.steps
    g, t = cfg.guidance, cfg.train
    weighted = {k: session.data.tags.tags[k] for k in KINDS if weight_name(k) in setup.guided}
    first_step = int(state.step)
    log = Logbook(session.run_dir) if is_primary() else Logbook.discard()
    compute, guard = ComputeMeter(), NonFiniteGuard(session.run_dir, t.max_nonfinite)
    rows = batch_sharding(session.mesh)
    stream = BatchStream(session.data.encoded["train"], session.shapes, t.seed, start=host.data, tags=weighted)
    pending: list[tuple[int, dict]] = []
    intervals: list[tuple[float, float]] = []
    restarts = list(host.restarts)
    spent = spent_steps(restarts)
    window = cfg.optim.warmup_steps if g.warmup_restarts else 0  # the warm-up rule's steps
    # the state of step 0, kept to start again from (the steps donate theirs)
    origin = jax.tree.map(jnp.copy, session.initial) if len(restarts) < g.warmup_restarts else None
    guided_count = sum(session.is_guided(s, spent) for s in range(first_step))
    position, scores = host.data, host.scores
    interval_start = train_start = time.time()
    bar = tqdm(total=t.steps, initial=first_step, disable=not progress, unit="step", dynamic_ncols=True)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: log.close())  # the logbook of the last attempt
        stack.callback(lambda: stream.close())
        stop = stack.enter_context(stop_requests())
        stopping = False
        step = first_step
        while step < t.steps:
            epoch = stream.state().epoch
            batch = next(stream)
            position = stream.state()  # consumed, not prefetched: where a resume starts
            resetting = g.reset_every and step and step % g.reset_every == 0 and not session.has_ended(step, spent)
            if setup.guided and resetting:
                state = placed(session, setup.trainer.reset(state))
            guided = session.is_guided(step, spent)
            if guided:
                batch, guide = put(batch, rows), put(session.guide_batches(epoch, guided_count, batch), rows)
                compute.count("guided", steps.guided, state, batch, guide)
                state, metrics, aux = steps.guided(state, batch, guide)
                guided_count += 1
            else:
                batch, kind = put(batch, rows), "held" if session.has_ended(step, spent) else "plain"
                compute.count(kind, getattr(steps, kind), state, batch)
                state, metrics, aux = getattr(steps, kind)(state, batch)
            pending.append((step + 1, {**metrics, "tokens": aux["tokens"]}))
            if setup.guided and step and session.has_ended(step, spent) and not session.has_ended(step - 1, spent):
                say_held(session, step, state)
            restart = origin is not None and guided and step < window and turn(session, step, state, metrics)
            if restart:
                intervals.append((write_records(jax.device_get(pending), time.time() - interval_start, log, guard, bar),
                                  time.time() - interval_start))  # fmt: skip
                restarts.append(restart)
                spent += restart.spent
                log.close()
                if is_primary():
                    set_attempt_aside(session.run_dir, len(restarts))
                    print(f"gradtune: step {step + 1}: the warm-up's first lowering step, at "
                          f"{restart.multiplier:.3g}× (rate {restart.learning_rate:.2e}): starting again from "
                          f"step 0 at {restart.new_multiplier:.3g}×", file=sys.stderr)  # fmt: skip
                log = Logbook(session.run_dir) if is_primary() else Logbook.discard()
                stream.close()
                stream = BatchStream(session.data.encoded["train"], session.shapes, t.seed, start=START, tags=weighted)
                state = restarted(session, origin, restart.new_multiplier)
                origin = origin if len(restarts) < g.warmup_restarts else None
                guard = NonFiniteGuard(session.run_dir, t.max_nonfinite)
                pending, guided_count, position, scores, step = [], 0, START, {}, 0
                bar.reset(total=t.steps)
                interval_start = time.time()
                continue
            evaluating = (step + 1) % t.eval_every == 0 or step + 1 == t.steps
            stopping = stop.signal is not None
            if jax.process_count() > 1:  # all processes stop together, at a log step, if any was asked to
                stopping = (step + 1) % t.log_every == 0 and any_process(stopping)
            saving = evaluating or (step + 1) % t.checkpoint_every == 0 or stopping
            if (step + 1) % t.log_every == 0 or saving:
                records = jax.device_get(pending)  # waits for the steps: the interval's time ends here
                seconds = time.time() - interval_start
                intervals.append((write_records(records, seconds, log, guard, bar), seconds))
                pending, interval_start = [], time.time()
            if evaluating:
                scores = evaluate_dev(session, state)
                log.write(step + 1, scores)
                if progress:
                    bar.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            if saving:
                host = HostState(position, scores if evaluating else {}, tuple(restarts))
                save(session, step + 1, state, host)
                interval_start = time.time()
            if evaluating and on_eval is not None:
                on_eval(step + 1, scores, {**compute.summary(), "train_seconds": time.time() - train_start})
            step += 1
            if stopping:
                break
    bar.close()
    stopped_by = (stop.name or "another process") if stopping else None
    return LoopResult(state, scores, intervals, compute, time.time() - train_start, stopped_by, tuple(restarts))


def say_held(session: Session, step: int, state: TrainState) -> None:
    """One line when guidance ends (``guidance.until_step``): the scalar values it holds from
    here on. Reads them back from the device once."""
    if not is_primary():
        return
    g = session.cfg.guidance
    values = jax.device_get(session.setup.trainer.values(state.raw))
    guided = session.setup.guided
    held = ", ".join(f"{name} {float(v):.4g}" for name, v in values.items() if name in guided and np.ndim(v) == 0)
    how = f"the mean of the guided steps from step {g.hold_mean_from}" if g.hold_mean_from else "the last guided step's"
    tqdm.write(f"gradtune: step {step + 1}: guidance is over; values held at {how}: {held}", file=sys.stderr)


def turn(session: Session, step: int, state: TrainState, metrics: dict) -> Restart | None:
    """The restart that guided step ``step`` calls for, if its meta step was the warm-up rule's
    first lowering (``restart.is_turn``; ``state``: after the step); None if not. Reads three
    scalars back from the device."""
    g = session.cfg.guidance
    after = session.setup.trainer.values(state.raw)["learning_rate"]
    before, rate, after = map(float, jax.device_get((metrics[value_key("learning_rate")], metrics["learning_rate"],
                                                     after)))  # fmt: skip
    if not is_turn(step, before, after, session.cfg.optim.warmup_steps, g.lower_lr_above):
        return None
    peak = peak_rate(session.setup.trainer.schedule, session.cfg.train.steps)
    return Restart(step, before, rate, restart_multiplier(rate, peak))


def restarted(session: Session, origin: TrainState, multiplier: float) -> TrainState:
    """The state of step 0 with the learning-rate multiplier ``multiplier``: the parameters and
    optimizer state of the run's start, the other guided values at their initial values, meta
    state and tangents fresh — the state of a run started at ``multiplier``."""
    state = jax.tree.map(jnp.copy, origin)  # origin stays whole for a later restart
    return placed(session, session.setup.trainer.reset(state, {"learning_rate": multiplier}))


def placed(session: Session, state: TrainState) -> TrainState:
    """``state`` (just reset by ``GuidedTrainer.reset``) with its guided part laid out as the steps take it."""
    layout = state_shardings(session.mesh, state)
    guided = ("raw", "meta_state", "tangents")
    return state._replace(**{k: place(getattr(state, k), getattr(layout, k)) for k in guided})


def set_attempt_aside(run_dir: Path, number: int) -> None:
    """An abandoned attempt's metrics kept as ``metrics.attempt-N.jsonl``; its TensorBoard events
    and any checkpoint of it (one saved on an interruption) removed, so that none is resumed."""
    (run_dir / "metrics.jsonl").replace(run_dir / f"metrics.attempt-{number}.jsonl")
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    for step in complete_steps(run_dir):
        remove_checkpoint(run_dir, step)


class NonFiniteGuard:
    """Stops the run after ``limit`` skipped (NaN or inf) updates in a row."""

    def __init__(self, run_dir: Path, limit: int):
        self.run_dir, self.limit, self.in_a_row = run_dir, limit, 0

    def check(self, step: int, skipped: float) -> None:
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if self.in_a_row >= self.limit:
            raise NonFiniteLoss(self.run_dir, step, self.in_a_row)


def write_records(records: list[tuple[int, dict]], seconds: float, log: Logbook, guard: NonFiniteGuard, bar) -> float:
    """Log a read-back interval's records, check them for NaNs, show the latest; its target tokens."""
    tokens = sum(float(m.pop("tokens")) for _, m in records)
    for step, metrics in records:
        log.write(step, metrics)
        guard.check(step, metrics["skipped"])
    latest = records[-1][1]
    bar.set_postfix(
        loss=f"{latest['train_loss']:.3f}",
        lr=f"{latest['learning_rate']:.2e}",
        tok_s=f"{tokens / max(seconds, 1e-9):,.0f}",
    )
    bar.update(len(records))
    return tokens


def write_artefacts(session: Session, result: LoopResult, start: float) -> dict:
    """Learned values, data weights, the plot and the summary; returns the summary."""
    run_dir, cfg, data, guided = session.run_dir, session.cfg, session.data, session.setup.guided
    records = read_metrics(run_dir)
    final = session.setup.trainer.values(result.state.raw)
    write_learned_values(run_dir, records, final, guided)
    weights = write_weights(run_dir, {k: v for k, v in final.items() if k in guided}, data.tags, data.splits["train"])
    plot_run(
        records,
        run_dir / "run.png",
        title=f"{cfg.data.corpus}, {session.model.d_model}d, guided: {', '.join(guided) or 'none'}",
        row_names={"corpus_weights": data.tags.corpus_names, "bucket_weights": data.tags.bucket_names},
    )
    summary = summarize(records, result.scores, guided)
    summary.update(weights)
    steps = int(result.state.step)
    summary.update(
        run_dir=str(run_dir),
        steps=steps,
        finished=steps == cfg.train.steps,
        beam_size=cfg.train.beam_size,
        train_pairs=len(data.splits["train"]),
        guide_pairs=len(data.splits["guide"]),
        dev_pairs=len(data.splits["dev"]),
        tokens_per_second=tokens_per_second(result.intervals),
        compute=result.compute.summary(),
        restarts=[r.to_json() for r in result.restarts],
        mesh=describe(session.mesh, result.state.params),
        train_seconds=result.seconds,
        total_seconds=time.time() - start,
    )
    write_json(run_dir / "summary.json", summary)
    write_hparams(run_dir, cfg, summary)
    return summary


def write_hparams(run_dir: Path, cfg: Config, summary: dict) -> None:
    """The run's config and final scores as TensorBoard HParams (``tensorboard --logdir runs``
    compares runs by them), in ``tensorboard/hparams``."""
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams as hparams_summary

    hparams = {
        k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in flat(to_dict(cfg)).items()
    }
    scores = {f"final/{k}": float(summary[k]) for k in SCORES if k in summary}
    with SummaryWriter(str(run_dir / "tensorboard" / "hparams")) as writer:
        for part in hparams_summary(hparams, scores):
            writer.file_writer.add_summary(part)
        for key, value in scores.items():
            writer.add_scalar(key, value, summary["steps"])


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
        rows = sorted({p[1] for r in records for k in r if (p := parse_value_key(k)) and p[0] == name},
                      key=lambda row: -1 if row is None else row)  # fmt: skip
        for row in rows:
            key = value_key(name, row)
            trajectories[key.removeprefix("value/")] = [[r["step"], r[key]] for r in records if key in r]
    values = {k: np.asarray(v).tolist() for k, v in final.items() if k != "example_weights"}
    payload = {"guided": list(guided), "final": values, "trajectory": trajectories}
    write_json(run_dir / "learned_values.json", payload)


def summarize(records: list[dict], final_scores: dict, guided: tuple[str, ...]) -> dict:
    summary = dict(final_scores)
    for name in guided:
        ys = [r[value_key(name)] for r in records if r.get(value_key(name)) is not None]
        if ys:
            summary[f"{name}_trajectory"] = {"start": ys[0], "min": min(ys), "max": max(ys), "end": ys[-1]}
    return summary
