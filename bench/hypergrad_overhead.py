"""What a guided step costs, against a plain step and against the floor.

The floor of a guided step is a plain step plus one forward and backward pass of the guide
batch (``DESIGN.md``). For each model preset, in one process, after warm-up, as medians of
interleaved repetitions, this times:

* ``plain``: the plain training step (no guidance: the step a ``--no-guidance`` run takes);
* ``guide f+b``: ``value_and_grad`` of the guide loss alone, at the guide batch size
  (and at a quarter of it, for variant e);
* guided steps (AdamW): (a) the learning rate only; (b) every optimizer-side value
  (``guided=all``: learning rate, b1, b2, eps, weight decay); (c) (b) + label smoothing;
  (d) (c) with ``guide_every=4``: 1 guided + 3 plain steps, timed together, per step;
  (e) (c) with a guide batch a quarter of the train batch; (f) (a) + data weights: corpus
  (2 corpora, ids drawn at random), bucket (8 length buckets) and example weights, on the
  same batches carrying their ids; (g) (a) and (h) (c) with forward-mode hypergradients
  (``guidance.horizon = forward``: one tangent of the parameters and optimizer state per
  value, carried through every step).

Each is reported as ms per step, × the plain step, and × its floor (plain + guide f+b at the
same guide batch size; for (d) plain + ¼ guide f+b). Peak memory is XLA's compiled
estimate: arguments + outputs − aliased (donated) + temporaries, from
``compiled.memory_analysis()``. Compile time is lowering + XLA compilation of the step.
Steps are jitted as the training loop jits them (donated state, dropout key folded in).
Batches are real: packed from the embedded lt-en corpus with a freshly trained tokenizer.

    python bench/hypergrad_overhead.py --quick              # tiny only, under two minutes
    python bench/hypergrad_overhead.py --json overhead.json # tiny and small
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from gradtune.train.config import load_config
from gradtune.train.data_weights import length_buckets
from gradtune.train.setup import build_state

GUIDED = {
    "a": ("learning rate", "learning_rate"),
    "b": ("all optimizer-side (AdamW)", "all"),
    "c": ("(b) + label smoothing", "all,label_smoothing"),
}
BARS = {"a": ("floor", 1.10), "b": ("floor", 1.10), "c": ("floor", 1.10), "d": ("plain", 1.35), "f": ("floor", 1.10)}
DATA_WEIGHTS = "learning_rate,corpus_weights,bucket_weights,example_weights"
FORWARD = {"g": "learning_rate", "h": "all,label_smoothing"}  # guidance.horizon = forward: no bar (a new cost)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", default="tiny,small", help="comma-separated model presets (default: tiny,small)")
    p.add_argument("--quick", action="store_true", help="tiny only, 3 repetitions (under two minutes)")
    p.add_argument("--repetitions", type=int, default=None, help="timed repetitions (default 7; quick 3)")
    p.add_argument("--rows", type=int, default=32, help="rows per train batch (default 32)")
    p.add_argument("--row-len", type=int, default=64, help="tokens per row (default 64)")
    p.add_argument("--guide-every", type=int, default=4, help="k of variant (d) (default 4)")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.presets = "tiny"
    if args.repetitions is None:
        args.repetitions = 3 if args.quick else 7
    return args


def compile_timed(jitted, *example):
    """(compiled executable, {compile seconds, peak-memory estimate in bytes, GFLOP})."""
    start = time.perf_counter()
    compiled = jitted.lower(*example).compile()
    seconds = time.perf_counter() - start
    return compiled, {"compile_s": seconds, "peak_bytes": peak_bytes(compiled), "gflop": gflop(compiled)}


def gflop(compiled) -> float | None:
    """XLA's count of floating-point operations of one call, in billions (noise-free)."""
    costs = compiled.cost_analysis()
    costs = costs[0] if isinstance(costs, list) else costs
    return costs["flops"] / 1e9 if costs and "flops" in costs else None


def peak_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes


class Stepper:
    """A training state advanced by compiled steps, as the loop advances it (donated)."""

    def __init__(self, state, plain, guided, train_batches, guide_batch):
        self.state, self.plain, self.guided = state, plain, guided
        self.batches, self.guide = harness.cycle(train_batches), guide_batch

    def run(self, guided: int, plain: int) -> None:
        state, pending = self.state, []
        for _ in range(guided):
            state, metrics, _ = self.guided(state, next(self.batches), self.guide)
            pending.append(metrics["guide_loss"])
        for _ in range(plain):
            state, metrics, _ = self.plain(state, next(self.batches))
            pending.append(metrics["train_loss"])
        self.state = state
        jax.block_until_ready(pending)

    def run_plain(self) -> None:
        self.run(0, 1)

    def run_guided(self) -> None:
        self.run(1, 0)

    def every(self, k: int):
        return lambda: self.run(1, k - 1)


def data_tags(encoded_train, seed: int = 0):
    """Per-example corpus (2, at random), bucket (8 by target length) and example ids, and
    each row's training tokens: what a run with two corpora would carry."""
    n = len(encoded_train)
    lengths = np.array([len(tgt) for _, tgt in encoded_train])
    tags = {
        "corpus": np.random.default_rng(seed).integers(0, 2, n).astype(np.int32),
        "bucket": length_buckets(lengths, 8)[0],
        "example": np.arange(n, dtype=np.int32),
    }
    counts = {kind: np.bincount(ids, lengths) for kind, ids in tags.items()}
    return tags, counts


def bench_preset(preset: str, args, train_batches, guide_full, guide_quarter, tagged_batches, counts) -> dict:
    base = [f"model.preset={preset}", f"batch_rows={args.rows}", f"row_len={args.row_len}"]
    batch = train_batches[0]

    # Every executable to build: name -> (jitted function, example arguments).
    cfg = load_config(None, [*base, "guidance.enabled=false"])
    _, _, setup, plain_state = build_state(cfg, cfg.data.vocab_size)
    params = jax.tree.map(jnp.copy, plain_state.params)  # the plain steps donate (delete) the state's own
    guide_fb = jax.jit(jax.value_and_grad(setup.trainer.guide_loss))
    jobs = {
        "plain": (harness.loop_steps(setup)[0], (plain_state, batch)),
        "guide_fb": (guide_fb, (params, guide_full)),
        "guide_fb_quarter": (guide_fb, (params, guide_quarter)),
    }
    states = {}
    for key, (_, guided) in GUIDED.items():
        cfg = load_config(None, [*base, f"guidance.guided={guided}", "guidance.horizon=one-step"])
        _, _, setup, states[key] = build_state(cfg, cfg.data.vocab_size)
        plain_k, guided_k = harness.loop_steps(setup)
        jobs[key] = (guided_k, (states[key], batch, guide_full))
    # (d) and (e) run (c)'s trainer: (d) its plain step between guided ones, (e) a smaller guide batch.
    states["d"], states["e"] = (build_state(cfg, cfg.data.vocab_size)[3] for _ in range(2))
    jobs["c_plain"] = (plain_k, (states["c"], batch))
    jobs["e"] = (guided_k, (states["c"], batch, guide_quarter))
    cfg = load_config(None, [*base, f"guidance.guided={DATA_WEIGHTS}"])
    _, _, setup, states["f"] = build_state(cfg, cfg.data.vocab_size, counts)
    jobs["f"] = (harness.loop_steps(setup)[1], (states["f"], tagged_batches[0], guide_full))
    for key, guided in FORWARD.items():
        cfg = load_config(None, [*base, f"guidance.guided={guided}", "guidance.horizon=forward"])
        _, _, setup, states[key] = build_state(cfg, cfg.data.vocab_size)
        jobs[key] = (harness.loop_steps(setup)[1], (states[key], batch, guide_full))

    built = {name: compile_timed(jitted, *example) for name, (jitted, example) in jobs.items()}
    exe = {name: b[0] for name, b in built.items()}
    info = {name: {**b[1], "steps": 1} for name, b in built.items()}
    c, c_plain, k = info["c"], info.pop("c_plain"), args.guide_every
    info["d"] = {
        "compile_s": c_plain["compile_s"],
        "peak_bytes": max(c["peak_bytes"] or 0, c_plain["peak_bytes"] or 0) or None,
        "gflop": (c["gflop"] + (k - 1) * c_plain["gflop"]) / k if c["gflop"] and c_plain["gflop"] else None,
        "steps": k,
    }

    candidates = {
        "plain": Stepper(plain_state, exe["plain"], None, train_batches, None).run_plain,
        "guide_fb": lambda: jax.block_until_ready(exe["guide_fb"](params, guide_full)),
        "guide_fb_quarter": lambda: jax.block_until_ready(exe["guide_fb_quarter"](params, guide_quarter)),
        **{k: Stepper(states[k], None, exe[k], train_batches, guide_full).run_guided for k in GUIDED},
        "d": Stepper(states["d"], exe["c_plain"], exe["c"], train_batches, guide_full).every(args.guide_every),
        "e": Stepper(states["e"], None, exe["e"], train_batches, guide_quarter).run_guided,
        "f": Stepper(states["f"], None, exe["f"], tagged_batches, guide_full).run_guided,
        **{k: Stepper(states[k], None, exe[k], train_batches, guide_full).run_guided for k in FORWARD},
    }
    times = harness.interleaved(candidates, args.repetitions, warmup=1)
    ms = {name: 1e3 * harness.median(t) / info[name]["steps"] for name, t in times.items()}
    floor = ms["plain"] + ms["guide_fb"]
    floors = {
        "a": floor,
        "b": floor,
        "c": floor,
        "d": ms["plain"] + ms["guide_fb"] / args.guide_every,
        "e": ms["plain"] + ms["guide_fb_quarter"],
        "f": floor,
        **dict.fromkeys(FORWARD, floor),
    }
    flop = {name: info[name]["gflop"] or float("nan") for name in candidates}
    flop_floors = {
        **dict.fromkeys("abcfgh", flop["plain"] + flop["guide_fb"]),
        "d": flop["plain"] + flop["guide_fb"] / args.guide_every,
        "e": flop["plain"] + flop["guide_fb_quarter"],
    }
    result = {}
    for name in candidates:
        entry = {
            "ms_per_step": ms[name],
            "ms_all": [1e3 * t / info[name]["steps"] for t in times[name]],
            "x_plain": ms[name] / ms["plain"],
            **info[name],
        }
        if name in floors:
            entry.update(
                floor_ms=floors[name],
                x_floor=ms[name] / floors[name],
                gflop_floor=flop_floors[name],
                gflop_x_floor=flop[name] / flop_floors[name],
            )
        result[name] = entry
    return result


LABELS = {
    "plain": "plain step",
    "guide_fb": "guide forward+backward (guide batch)",
    "guide_fb_quarter": "guide forward+backward (¼ guide batch)",
    "a": "(a) guided: learning rate",
    "b": "(b) guided: all AdamW values",
    "c": "(c) guided: (b) + label smoothing",
    "d": "(d) (c), guide_every={k} (per step)",
    "e": "(e) (c), guide batch ¼ of train batch",
    "f": "(f) (a) + corpus, bucket, example weights",
    "g": "(g) (a), forward mode (1 tangent)",
    "h": "(h) (c), forward mode (6 tangents)",
}


def table(results: dict, args) -> str:
    rows = []
    for preset, r in results.items():
        for name, e in r.items():
            bar = BARS.get(name)
            verdict = ""
            if bar:
                value = e["x_floor"] if bar[0] == "floor" else e["x_plain"]
                verdict = f"{'ok' if value <= bar[1] else 'ABOVE'} (≤ {bar[1]:.2f}× {bar[0]})"
            mb = "n/a" if e["peak_bytes"] is None else f"{e['peak_bytes'] / 2**20:,.0f}"
            flops = "n/a" if e["gflop"] is None else f"{e['gflop']:.1f}"
            if "gflop_x_floor" in e:
                flops += f" ({e['gflop_x_floor']:.2f}×)"
            rows.append(
                [
                    preset,
                    LABELS[name].format(k=args.guide_every),
                    f"{e['ms_per_step']:,.0f}",
                    f"{e['x_plain']:.2f}",
                    f"{e['x_floor']:.2f}" if "x_floor" in e else "",
                    verdict,
                    flops,
                    mb,
                    f"{e['compile_s']:.1f}",
                ]
            )
    header = ["preset", "variant", "ms/step", "× plain", "× floor", "bar", "GFLOP (× floor)", "peak MB", "compile s"]
    return harness.markdown_table(header, rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    before = harness.machine_state()
    cfg = load_config(None, [f"batch_rows={args.rows}", f"row_len={args.row_len}"])
    encoded = harness.encoded_corpus(cfg)
    train_batches = harness.packed_batches(encoded["train"], args.rows, args.row_len, 8)
    guide_full = harness.packed_batches(encoded["guide"], args.rows, args.row_len, 1, seed=1)[0]
    guide_quarter = harness.packed_batches(encoded["guide"], max(args.rows // 4, 1), args.row_len, 1, seed=1)[0]
    tags, counts = data_tags(encoded["train"])
    tagged_batches = harness.packed_batches(encoded["train"], args.rows, args.row_len, 8, tags=tags)
    results = {}
    for preset in args.presets.split(","):
        results[preset] = bench_preset(preset, args, train_batches, guide_full, guide_quarter, tagged_batches, counts)
        print(f"{preset}: done", flush=True)
    after = harness.machine_state()
    print()
    print(
        f"Guided-step overhead, train batch {args.rows} rows × {args.row_len} tokens (packed lt-en), guide batch "
        f"{args.rows} rows ((e): {max(args.rows // 4, 1)}), AdamW, float32, JAX {jax.__version__} on CPU; "
        f"medians of {args.repetitions} interleaved repetitions after one warm-up round. "
        "floor = plain + guide f+b at the same guide batch size ((d): plain + ¼ guide f+b). "
        "GFLOP = XLA's count per step (cost_analysis), noise-free. "
        "peak MB = XLA's estimate: arguments + outputs − donated + temporaries. "
        "compile s = lower + compile ((d): of its plain step)."
    )
    print(f"Machine: {harness.describe_machine(before)} before; load {after['load_average_1_5_15']} after.")
    print(table(results, args))
    if args.json:
        payload = {
            "machine_before": before,
            "machine_after": after,
            "batch": {
                "rows": args.rows,
                "row_len": args.row_len,
                "guide_rows": args.rows,
                "guide_rows_e": args.rows // 4,
            },
            "batches": "packed from the embedded lt-en corpus",
            "repetitions": args.repetitions,
            "guide_every_d": args.guide_every,
            "jax": jax.__version__,
            "peak_bytes": "arguments + outputs - aliased + temporaries (compiled.memory_analysis())",
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
