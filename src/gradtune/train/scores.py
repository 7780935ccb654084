"""Scores of a run's training pairs: how clean each one looks, measured eight ways.

* ``loss``: the pair's mean token loss under the run's model (eval mode, no smoothing);
* ``dppl``: its *delta log-perplexity* (Lichtarge, Alberti & Kumar, TACL 2020): its loss
  under the run's model minus its loss under a copy of that model fine-tuned for a few
  steps on the trusted guide split. A pair the trusted data make likelier scores high;
  a pair unlike them (noise) scores low;
* ``dppl_end``: the same delta of the end-of-sentence token alone. A mean over the tokens
  cannot see a target cut short (its tokens are right, only its early end is wrong);
  the fine-tuned model, which never saw a sentence end early, can;
* ``contrast``: how much the pair's own source helps the run's model: the target's loss
  given another pair's source (a fixed derangement) minus its loss given its own. Near 0
  for a target unrelated to its source (a misaligned pair);
* ``combined``: the three detectors together — a pair's worst quantile under ``dppl``,
  ``dppl_end`` and ``contrast`` (in (0, 1]; low when any of them flags it);
* ``weight``: its learned example weight; ``bucket``: the learned weight of its bucket;
  ``whole``: the product of its learned corpus, bucket and example weights (what
  ``gradtune filter`` ranks by by default) — each where the run guided it.

Higher is cleaner for every score but ``loss`` (``CLEANER``). A run's scores go to
``example_scores.tsv`` (corpus, index, one column per score, source, target, in the order
of the training split), which ``gradtune filter --by`` ranks and ``data.bucket_by =
"score:NAME"`` buckets by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy.stats import rankdata
from tqdm import tqdm

from gradtune.data.batching import Encoded, encode_pairs, pack, training_batches
from gradtune.data.corpora import Example
from gradtune.data.prepare import Prepared
from gradtune.data.tokenizer import EOS_ID
from gradtune.errors import DataError, GradtuneError
from gradtune.files import write_text
from gradtune.seq2seq.loss import token_losses
from gradtune.seq2seq.objectives import KINDS, make_losses, weight_name
from gradtune.train.config import Config
from gradtune.train.data_weights import EXAMPLE_WEIGHTS, SCORE_NAMES, one_field, read_example_weights
from gradtune.train.inputs import WEIGHT_COUNTS, fingerprint, load_splits

SCORES_FILE = "example_scores.tsv"
CLEANER = {name: -1.0 if name == "loss" else 1.0 for name in SCORE_NAMES}  # sign: higher × sign = cleaner


@dataclass(frozen=True)
class Scores:
    """Each training pair's corpus name, text and scores (only the measured ones)."""

    corpora: list[str]
    pairs: list[tuple[str, str]]
    values: dict[str, np.ndarray]  # score name → (n,) float64

    def cleanliness(self, name: str) -> np.ndarray:
        """The score ``name`` signed so that higher is cleaner."""
        if name not in self.values:
            measured = ", ".join(self.values) or "none"
            raise GradtuneError(f"no {name!r} score here (measured: {measured}); see `gradtune score --help`")
        return CLEANER[name] * self.values[name]


def write_scores(path: Path, scores: Scores) -> None:
    names = [n for n in SCORE_NAMES if n in scores.values]
    lines = ["\t".join(("corpus", "index", *names, "source", "target"))]
    for i, (corpus, (source, target)) in enumerate(zip(scores.corpora, scores.pairs, strict=True)):
        numbers = (f"{scores.values[n][i]:.6g}" for n in names)
        lines.append("\t".join((corpus, str(i), *numbers, one_field(source), one_field(target))))
    write_text(path, "\n".join(lines) + "\n")


def scores_path(location: str | Path) -> Path:
    """A scores file, or the ``example_scores.tsv`` of a run directory."""
    path = Path(location)
    if path.is_dir():
        path = path / SCORES_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such scores file; write one with `gradtune score --run RUN`")
    return path


def read_scores(location: str | Path) -> Scores:
    """The scores of a file ``write_scores`` wrote, or of a run directory's."""
    path = scores_path(location)
    corpora, pairs, columns = [], [], []
    with path.open(encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        names = header[2:-2]
        if header[:2] != ["corpus", "index"] or header[-2:] != ["source", "target"] or not set(names) <= set(CLEANER):
            raise DataError(f"{path}: not a scores file (its header is {header[:6]}…); write one with `gradtune score`")
        for number, line in enumerate(f, 2):
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != len(header):
                    raise ValueError(f"{len(fields)} fields, not {len(header)}")
                columns.append([float(x) for x in fields[2:-2]])
            except ValueError as e:
                raise DataError(f"{path}:{number}: not a line of a scores file ({e})") from e
            corpora.append(fields[0])
            pairs.append((fields[-2], fields[-1]))
    table = np.asarray(columns, np.float64).reshape(len(pairs), len(names))
    if not np.all(np.isfinite(table)):
        bad = int(np.argwhere(~np.isfinite(table))[0][0])
        raise DataError(f"{path}:{bad + 2}: a score that is not a finite number; score the run again")
    return Scores(corpora, pairs, {name: table[:, k] for k, name in enumerate(names)})


def check_matches(scores: Scores, examples: Sequence[Example], where: str) -> None:
    """Raise unless ``scores`` are of exactly these training pairs, in this order."""
    if len(scores.pairs) != len(examples):
        raise DataError(
            f"{where} scores {len(scores.pairs):,} pairs, this run's training split has {len(examples):,}: "
            "score the same data (`gradtune score` on a run of this corpus and these settings)"
        )
    for i, (pair, e) in enumerate(zip(scores.pairs, examples, strict=True)):
        if tuple(map(one_field, pair)) != (one_field(e.source), one_field(e.target)):
            raise DataError(
                f"{where}: pair {i} is {pair[0][:40]!r}…, this run's is {e.source[:40]!r}…: "
                "the scores are of other data; score the same corpus with the same settings"
            )


@partial(jax.jit, static_argnums=(0, 3))
def _loss_sums(graphdef, params, batch, n: int):
    """Per example of a packed batch: the sum of its token losses, its token count and the
    loss of its end-of-sentence token."""
    logits = nnx.merge(graphdef, params)(batch)
    mask = batch["tgt_out"] != 0
    losses = jnp.where(mask, token_losses(logits, batch["tgt_out"]), 0.0)
    ids = batch["tgt_example"].ravel()
    end = jnp.where(batch["tgt_out"] == EOS_ID, losses, 0.0)
    return (
        jax.ops.segment_sum(losses.ravel(), ids, n),
        jax.ops.segment_sum(mask.ravel().astype(losses.dtype), ids, n),
        jax.ops.segment_sum(end.ravel(), ids, n),
    )


@dataclass(frozen=True)
class PairLosses:
    """Per example: its mean token loss and the loss of its end-of-sentence token."""

    mean: np.ndarray
    end: np.ndarray


def per_example_losses(
    graphdef, params, examples: Sequence[Encoded], rows: int, row_len: int, progress: bool = False
) -> PairLosses:
    """Each example's losses under ``params`` (eval mode, no smoothing). One compilation
    serves every call with the same model and number of examples."""
    n = len(examples)
    total, count, end = np.zeros(n), np.zeros(n), np.zeros(n)
    with tqdm(total=n, disable=not progress, unit="pair", desc="scoring", dynamic_ncols=True) as bar:
        for batch in pack(examples, range(n), rows, row_len, {"example": np.arange(n)}):
            s, c, e = _loss_sums(graphdef, params, batch, n)
            total += np.asarray(s)
            count += np.asarray(c)
            end += np.asarray(e)
            bar.update(int(((batch["tgt_pos"] == 0) & (batch["tgt_out"] != 0)).sum()))  # examples in the batch
    return PairLosses(total / np.maximum(count, 1), end)


def deranged(examples: Sequence[Encoded], seed: int = 0) -> list[Encoded]:
    """Each target with another example's source: a random cycle, so no pair keeps its own."""
    order = np.random.default_rng([seed, 23]).permutation(len(examples))
    source_of = np.empty(len(examples), np.int64)
    source_of[order] = np.roll(order, -1)
    return [(examples[int(j)][0], target) for (_, target), j in zip(examples, source_of, strict=True)]


def quantiles(values: np.ndarray) -> np.ndarray:
    """Each value's quantile among ``values`` in (0, 1], ties sharing their mean rank."""
    return rankdata(values) / len(values)


def combined(dppl: np.ndarray, dppl_end: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """The worst of a pair's quantiles under the three detectors (higher = cleaner)."""
    return np.minimum.reduce([quantiles(dppl), quantiles(dppl_end), quantiles(contrast)])


def finetune_scores(base: PairLosses, tuned: PairLosses, other_source: PairLosses) -> dict[str, np.ndarray]:
    """``dppl``, ``dppl_end``, ``contrast`` and ``combined`` from a pair's losses under the run's
    model, under its fine-tuned copy, and under the run's model given another pair's source."""
    scores = {
        "dppl": base.mean - tuned.mean,
        "dppl_end": base.end - tuned.end,
        "contrast": other_source.mean - base.mean,
    }
    scores["combined"] = combined(scores["dppl"], scores["dppl_end"], scores["contrast"])
    return scores


def finetune(
    graphdef,
    params,
    examples: Sequence[Encoded],
    steps: int,
    learning_rate: float,
    rows: int,
    row_len: int,
    seed: int,
    progress: bool = False,
):
    """``params`` after ``steps`` steps of Adam at a constant ``learning_rate`` on ``examples``
    (plain cross-entropy, no dropout): the trusted fine-tune of delta log-perplexity."""
    optimizer = optax.adam(learning_rate)
    loss = make_losses(graphdef).guide

    @jax.jit
    def step(params, opt_state, batch):
        grads = jax.grad(loss)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    batches = training_batches(examples, [(rows, row_len)], seed)
    bar = tqdm(range(steps), disable=not progress, unit="step", desc="fine-tuning on the guide split", leave=False)
    for _ in bar:
        params, opt_state = step(params, opt_state, next(batches)[1])
    return params


def training_examples(run_dir: Path, cfg: Config, prepared: Prepared | None = None) -> tuple[list[Example], list[str]]:
    """A run's training split and corpus names: rebuilt from its config, or — when the run
    trained on data its config does not make (an experiment's) — read from its
    ``example_weights.tsv`` (corpus order from ``corpus_weights.json``). Checked against the
    fingerprint the run recorded (``data.json``): other pairs are one line of error. ``prepared``:
    the config's splits when the caller has loaded them."""
    prepared = load_splits(cfg.data) if prepared is None else prepared
    examples, corpora = prepared.splits["train"], prepared.corpora
    if (run_dir / EXAMPLE_WEIGHTS).is_file():
        rows = read_example_weights(run_dir)
        same = len(rows) == len(examples) and all(
            (s, t) == (one_field(e.source), one_field(e.target)) for (_, _, s, t), e in zip(rows, examples, strict=True)
        )
        if not same:
            order = run_dir / "corpus_weights.json"
            named = [r["corpus"] for r in json.loads(order.read_text())] if order.is_file() else []
            corpora = list(dict.fromkeys([*named, *(name for name, *_ in rows)]))
            examples = [Example(s, t, "", corpora.index(name)) for name, _, s, t in rows]
    recorded = run_dir / "data.json"
    trained_on = json.loads(recorded.read_text()).get("train_sha256") if recorded.is_file() else None
    if trained_on is not None and trained_on != fingerprint(examples):
        raise DataError(
            f"{run_dir} trained on other pairs than its config makes ({recorded}: train_sha256): its data came "
            "from elsewhere (an experiment's); score it where that data is built (train.scores.score_run)"
        )
    return examples, corpora


def learned_weights(values: dict[str, np.ndarray], tags: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scores the learned data weights give: ``weight``, ``bucket`` and ``whole``, where guided."""
    scores = {}
    if weight_name("example") in values:
        scores["weight"] = np.asarray(values[weight_name("example")], np.float64)[tags["example"]]
    if weight_name("bucket") in values:
        scores["bucket"] = np.asarray(values[weight_name("bucket")], np.float64)[tags["bucket"]]
    guided = [kind for kind in KINDS if weight_name(kind) in values]
    if guided:
        scores["whole"] = np.prod(
            [np.asarray(values[weight_name(kind)], np.float64)[tags[kind]] for kind in guided], axis=0
        )
    return scores


def score_run(
    run_dir: Path,
    finetune_steps: int,
    finetune_lr: float,
    which: str = "last",
    examples: list[Example] | None = None,
    corpora: list[str] | None = None,
    progress: bool = True,
    guide: list[Example] | None = None,
) -> Scores:
    """Every score of a run's training pairs (``examples``, ``corpora`` and ``guide``: its
    training split, corpus names and guide split when the caller built the data; by default
    ``training_examples`` and the config's guide split). ``finetune_steps = 0``: ``loss`` and
    the learned weights only."""
    from gradtune.train.data_weights import data_tags, read_counts
    from gradtune.train.guidance import build_trainer
    from gradtune.train.setup import load_run

    if finetune_steps < 0 or not finetune_lr > 0:
        raise GradtuneError(
            f"the fine-tune of delta log-perplexity needs steps ≥ 0 and a learning rate > 0 "
            f"(given {finetune_steps} and {finetune_lr})"
        )
    run = load_run(run_dir, which)
    cfg, d = run.cfg, run.cfg.data
    if cfg.data.objective != "translation":
        raise GradtuneError(f"{run_dir} is a {cfg.data.objective} run; scores are of translation pairs")
    prepared = load_splits(d) if examples is None or (finetune_steps and guide is None) else None
    if examples is None:
        examples, corpora = training_examples(run_dir, cfg, prepared)
    encoded = encode_pairs(run.tokenizer, [(e.source, e.target) for e in examples], d.row_len)
    values: dict[str, np.ndarray] = {}
    base = per_example_losses(run.graphdef, run.state.params, encoded, d.guide_rows, d.row_len, progress)
    values["loss"] = base.mean
    if finetune_steps:
        guide = prepared.splits["guide"] if guide is None else guide
        guide_encoded = encode_pairs(run.tokenizer, [(e.source, e.target) for e in guide], d.row_len)
        tuned = finetune(
            run.graphdef, run.state.params, guide_encoded, finetune_steps, finetune_lr, d.guide_rows, d.row_len,
            cfg.train.seed, progress,
        )  # fmt: skip
        after = per_example_losses(run.graphdef, tuned, encoded, d.guide_rows, d.row_len, progress)
        other_source = per_example_losses(run.graphdef, run.state.params, deranged(encoded), d.guide_rows, d.row_len,
                                          progress)  # fmt: skip
        values.update(finetune_scores(base, after, other_source))
    losses = make_losses(run.graphdef)
    setup = build_trainer(cfg, losses.train, losses.guide, read_counts(run_dir / WEIGHT_COUNTS))
    learned = {k: np.asarray(v) for k, v in setup.trainer.values(run.state.raw).items() if k in setup.guided}
    if any(weight_name(kind) in learned for kind in KINDS):
        tags = data_tags(d, examples, encoded, corpora).tags
        values.update(learned_weights(learned, tags))
    return Scores([corpora[e.corpus] for e in examples], [(e.source, e.target) for e in examples], values)
