"""Training throughput: gradtune's plain step against the same model in PyTorch.

Target tokens per second (padding excluded) of one training update — forward, backward,
AdamW — of the ``tiny`` and ``small`` presets, on the same packed batches of the embedded
lt-en corpus (32 rows × 64 tokens by default), in one process: windows of a few steps of
each framework, interleaved, summarised by their medians.

gradtune's step is the loop's: jitted once, the state donated, the dropout key folded in
inside the jit, batches handed over as numpy arrays, results read back only at the end of
a window. The PyTorch peer (``bench/torch_peer.py``) is the same network in float32 with
the same dropout, label smoothing 0.1 and AdamW (fused CPU kernel), run eagerly with
``F.scaled_dot_product_attention`` (PyTorch's fused CPU attention) and, with
``--compile``, under ``torch.compile``. Both use the same number of threads: the cores
XLA's CPU client sees (``--threads`` changes only PyTorch's).

PyTorch's OpenMP threads spin-wait between parallel regions by default; on a machine
shared with other work that makes a 2-thread PyTorch several times slower than it can be.
This script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the environment already sets it),
PyTorch's best setting here, so the peer is not handicapped.

    pip install -e ".[bench]"                     # PyTorch (CPU build), benchmark only
    python bench/throughput.py --quick            # tiny only, ~1 minute
    python bench/throughput.py --json tp.json     # tiny and small
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before PyTorch loads its OpenMP runtime

import argparse
import json
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from gradtune.train.config import load_config
from gradtune.train.setup import build_state


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", default="tiny,small", help="comma-separated model presets (default: tiny,small)")
    p.add_argument("--quick", action="store_true", help="tiny only, fewer repetitions (about a minute)")
    p.add_argument("--repetitions", type=int, default=None, help="timed windows per framework (default 7; quick 5)")
    p.add_argument("--window", type=int, default=3, help="training steps per timed window (default 3)")
    p.add_argument("--rows", type=int, default=32, help="rows per batch (default 32)")
    p.add_argument("--row-len", type=int, default=64, help="tokens per row (default 64)")
    p.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: the cores JAX uses)")
    p.add_argument("--compile", action="store_true", help="also time the PyTorch peer under torch.compile")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.presets = "tiny"
    if args.repetitions is None:
        args.repetitions = 5 if args.quick else 7
    return args


def gradtune_window(preset: str, args, batches):
    """A callable running ``args.window`` plain steps of gradtune, and the compile seconds."""
    cfg = load_config(None, [f"model.preset={preset}", "guidance.enabled=false"])
    model_cfg, _, setup, state = build_state(cfg, cfg.data.vocab_size)
    plain_step, _ = harness.loop_steps(setup)
    start = time.perf_counter()
    plain_step = plain_step.lower(state, batches[0]).compile()
    compile_s = time.perf_counter() - start
    box = {"state": state}
    stream = harness.cycle(batches)

    def window():
        state, pending = box["state"], []
        for _ in range(args.window):
            state, metrics, _ = plain_step(state, next(stream))
            pending.append(metrics["train_loss"])
        box["state"] = state
        jax.block_until_ready(pending)

    return model_cfg, window, compile_s


def torch_window(model_cfg, args, batches, compiled: bool):
    import torch
    from torch_peer import PeerConfig, make_step, to_torch

    peer = PeerConfig(
        vocab_size=model_cfg.vocab_size,
        d_model=model_cfg.d_model,
        num_heads=model_cfg.num_heads,
        mlp_dim=model_cfg.mlp_dim,
        encoder_layers=model_cfg.encoder_layers,
        decoder_layers=model_cfg.decoder_layers,
        dropout=model_cfg.dropout,
    )
    step = make_step(peer, compiled=compiled)
    torch_batches = [to_torch(b) for b in batches]
    start = time.perf_counter()
    step(torch_batches[0])  # builds (and with torch.compile, compiles) everything
    step(torch_batches[1])
    compile_s = time.perf_counter() - start
    stream = harness.cycle(torch_batches)

    def window():
        losses = [step(next(stream)) for _ in range(args.window)]
        torch.stack(losses).sum().item()

    return window, compile_s


def bench_preset(preset: str, args, batches, tokens_per_batch: float) -> dict:
    model_cfg, gradtune, jax_compile = gradtune_window(preset, args, batches)
    candidates = {"gradtune": gradtune}
    setup_s = {"gradtune": jax_compile}
    torch_eager, setup_s["torch_eager"] = torch_window(model_cfg, args, batches, compiled=False)
    candidates["torch_eager"] = torch_eager
    if args.compile:
        try:
            candidates["torch_compile"], setup_s["torch_compile"] = torch_window(model_cfg, args, batches, True)
        except Exception as e:  # inductor needs a working C++ toolchain
            print(f"torch.compile failed, reported without it: {type(e).__name__}: {str(e).splitlines()[0]}")
    times = harness.interleaved(candidates, args.repetitions, warmup=1)
    window_tokens = args.window * tokens_per_batch
    result = {}
    for name, seconds in times.items():
        med = harness.median(seconds)
        result[name] = {
            "tokens_per_s": window_tokens / med,
            "step_ms": 1e3 * med / args.window,
            "step_ms_all": [1e3 * s / args.window for s in seconds],
            "setup_s": setup_s[name],
        }
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    threads = args.threads or harness.cores()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as XLA's CPU client does
    before = harness.machine_state()
    cfg = load_config(None, [f"batch_rows={args.rows}", f"row_len={args.row_len}"])
    batches = harness.packed_batches(harness.encoded_corpus(cfg)["train"], args.rows, args.row_len, 8)
    tokens_per_batch = sum(map(harness.target_tokens, batches)) / len(batches)

    results = {}
    for preset in args.presets.split(","):
        results[preset] = bench_preset(preset, args, batches, tokens_per_batch)
        print(f"{preset}: done", flush=True)
    after = harness.machine_state()

    names = [n for n in ("torch_eager", "torch_compile") if n in results[next(iter(results))]]
    header = ["preset", "gradtune tok/s", *[f"{n.replace('_', ' ')} tok/s" for n in names]]
    header += [f"gradtune / {n.replace('_', ' ')}" for n in names]
    rows = []
    for preset, r in results.items():
        g = r["gradtune"]["tokens_per_s"]
        rows.append(
            [
                preset,
                f"{g:,.0f} ({r['gradtune']['step_ms']:.0f} ms/step)",
                *[f"{r[n]['tokens_per_s']:,.0f} ({r[n]['step_ms']:.0f} ms/step)" for n in names],
                *[f"{g / r[n]['tokens_per_s']:.2f}×" for n in names],
            ]
        )
    print()
    print(
        f"Training tokens/s (target tokens, padding excluded), batch {args.rows} rows × {args.row_len} tokens "
        f"(packed lt-en, {tokens_per_batch:.0f} target tokens per batch), float32, "
        f"medians of {args.repetitions} interleaved windows of {args.window} steps; "
        f"JAX {jax.__version__} ({harness.cores()} cores), PyTorch {torch.__version__} "
        f"({threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})."
    )
    print(f"Machine: {harness.describe_machine(before)} before; load {after['load_average_1_5_15']} after.")
    print(harness.markdown_table(header, rows))
    if args.json:
        payload = {
            "machine_before": before,
            "machine_after": after,
            "batch": {"rows": args.rows, "row_len": args.row_len, "target_tokens_mean": tokens_per_batch},
            "repetitions": args.repetitions,
            "window_steps": args.window,
            "versions": {"jax": jax.__version__, "torch": torch.__version__},
            "torch_threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
