"""``gradtune report``: runs and sweeps side by side, as one self-contained HTML page.

The page needs no network: plotly.js, the styles and every figure are inline (the sweep's
PNG plots as data URIs). What it shows:

* a table of the runs: the config keys whose values differ between them, steps, dev loss,
  dev BLEU and chrF, test BLEU and chrF where a sweep measured them, tokens per second, and
  each guided value's start → end;
* train, guide and dev loss against step, every run overlaid;
* the effective learning rate and each guided value against step;
* data weights: corpus and bucket weights over time, and a histogram of example weights;
* for a sweep, its table (method, trials, compute, best dev loss, BLEU, chrF) and plots.

Figures are plotly's (hover, zoom, a click on a legend entry hides a run).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from gradtune.core.step import parse_value_key
from gradtune.errors import GradtuneError
from gradtune.files import write_text
from gradtune.train.config import flat
from gradtune.train.logbook import read_metrics

SWEEP_PLOTS = ("efficiency.png", "trajectories.png", "final_vs_start.png")
LOSSES = ("train_loss", "guide_loss", "dev_loss")


class ReportError(GradtuneError):
    """A path that is neither a run nor a sweep."""


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    summary: dict
    records: list[dict]
    extra: dict = field(default_factory=dict)  # test scores a sweep measured


@dataclass
class SweepReport:
    name: str
    path: Path
    report: dict


def load_inputs(paths: list[Path]) -> tuple[list[Run], list[SweepReport]]:
    """The runs and sweeps of ``paths`` (a sweep brings its trials' runs); one line for anything else."""
    runs: list[Run] = []
    sweeps: list[SweepReport] = []
    for path in paths:
        if (path / "sweep.json").is_file():
            report = json.loads((path / "sweep.json").read_text())
            sweeps.append(SweepReport(path.name, path, report))
            for trials in report.get("trials", {}).values():
                for trial in trials if isinstance(trials, list) else []:
                    run_dir = Path(trial.get("run_dir", ""))  # as the sweep named it; its trials may be gone
                    if (run_dir / "metrics.jsonl").is_file():
                        tests = {k: trial[k] for k in ("test_bleu", "test_chrf") if k in trial}
                        runs.append(_run(run_dir, f"{path.name}/{run_dir.name}", tests))
        elif (path / "config.json").is_file() and (path / "metrics.jsonl").is_file():
            runs.append(_run(path, path.name))
        else:
            what = "no such folder" if not path.exists() else "no sweep.json, nor config.json and metrics.jsonl"
            raise ReportError(f"{path} is neither a run nor a sweep ({what}); give folders that train or sweep wrote")
    if not runs and not sweeps:
        raise ReportError("nothing to report: give at least one run or sweep folder")
    return runs, sweeps


def _run(path: Path, name: str, extra: dict | None = None) -> Run:
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    return Run(name, path, json.loads((path / "config.json").read_text()), summary, read_metrics(path), extra or {})


def differing_keys(runs: list[Run]) -> list[str]:
    """The config keys whose values are not the same in every run (run_dir-like keys left out)."""
    flats = [flat(r.config) for r in runs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({json.dumps(f.get(k)) for f in flats}) > 1]


def _series(run: Run, key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in run.records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _figure(title: str, y_title: str, log_y: bool = False) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, xaxis_title="step", yaxis_title=y_title, template="plotly_white", height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"font": {"size": 11}},
    )  # fmt: skip
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def loss_figure(runs: list[Run]) -> go.Figure:
    fig = _figure("Losses (train and guide every logged step, dev at each evaluation)", "loss")
    for run in runs:
        for key in LOSSES:
            steps, values = _series(run, key)
            if values:
                mode = "lines+markers" if key == "dev_loss" else "lines"
                fig.add_trace(go.Scatter(x=steps, y=values, mode=mode, name=f"{run.name} · {key}",
                                         legendgroup=run.name))  # fmt: skip
    return fig


def value_figures(runs: list[Run]) -> list[go.Figure]:
    """The effective learning rate, then each guided scalar value, then each vector's rows."""
    figures = []
    lr = _figure("Effective learning rate (schedule × guided multiplier)", "learning rate", log_y=True)
    for run in runs:
        steps, values = _series(run, "learning_rate")
        if values:
            lr.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=run.name, legendgroup=run.name))
    figures.append(lr)
    names: dict[str, set] = {}
    for run in runs:
        for record in run.records:
            for key in record:
                if (parsed := parse_value_key(key)) is not None:
                    names.setdefault(parsed[0], set()).add(parsed[1])
    for name in sorted(names):
        rows = sorted(names[name], key=lambda r: -1 if r is None else r)
        title = f"Guided {name}" if rows == [None] else f"Guided {name} (one line per row)"
        fig = _figure(title, name)
        for run in runs:
            labels = _row_labels(run, name)
            for row in rows:
                key = f"value/{name}" if row is None else f"value/{name}/{row}"
                steps, values = _series(run, key)
                if values:
                    label = run.name if row is None else f"{run.name} · {labels.get(row, row)}"
                    fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=label, legendgroup=run.name))
        if fig.data:
            figures.append(fig)
    return figures


def _row_labels(run: Run, name: str) -> dict[int, str]:
    """Corpus or bucket names of a weight vector's rows, from the run's ``corpus_weights.json``…"""
    path = run.path / f"{name}.json"
    if not path.is_file():
        return {}
    names = list(json.loads(path.read_text()))
    return dict(enumerate(names))


def example_weight_figure(runs: list[Run]) -> go.Figure | None:
    fig = go.Figure()
    for run in runs:
        path = run.path / "example_weights.tsv"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()[1:]
            weights = [float(line.split("\t")[2]) for line in lines if line.count("\t") >= 2]
            fig.add_trace(go.Histogram(x=weights, name=run.name, opacity=0.6, nbinsx=60))
    if not fig.data:
        return None
    fig.update_layout(title="Learned example weights (final)", xaxis_title="weight", yaxis_title="examples",
                      barmode="overlay", template="plotly_white", height=420)  # fmt: skip
    return fig


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("—" if value is None else str(value))


def runs_table(runs: list[Run]) -> str:
    keys = differing_keys(runs)
    columns = ["run", *keys, "steps", "dev loss", "dev BLEU", "dev chrF", "test BLEU", "test chrF", "tokens/s",
               "guided values (start → end)"]  # fmt: skip
    rows = []
    for run in runs:
        values, s = flat(run.config), run.summary
        guided = "; ".join(
            f"{key.removesuffix('_trajectory')} {t['start']:.3g} → {t['end']:.3g}"
            for key, t in s.items()
            if key.endswith("_trajectory")
        )
        cells = [run.name, *(values.get(k) for k in keys), s.get("steps"), s.get("dev_loss"), s.get("dev_bleu"),
                 s.get("dev_chrf"), run.extra.get("test_bleu"), run.extra.get("test_chrf"),
                 s.get("tokens_per_second"), guided or None]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def sweep_section(sweep: SweepReport) -> str:
    methods = sweep.report.get("methods", {})
    columns = ["method", "trials", "TFLOP", "best dev loss", "dev BLEU", "test BLEU", "test chrF", "best trial"]
    rows = []
    for method, m in methods.items():
        best = m.get("best") or {}
        cells = [method, m.get("trials"), (m.get("compute_flops") or 0) / 1e12 or None, best.get("dev_loss"),
                 best.get("dev_bleu"), best.get("test_bleu"), best.get("test_chrf"), best.get("label")]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{_base64(sweep.path / name)}">'
        f"<figcaption>{name}</figcaption></figure>"
        for name in SWEEP_PLOTS
        if (sweep.path / name).is_file()
    )
    return (f"<h2>Sweep {html.escape(sweep.name)}</h2><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><div class='images'>{images}</div>")  # fmt: skip


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f3f3f3; }
.figure { margin: 1.5em 0; }
.images img { max-width: 48%; margin: 0.5em; border: 1px solid #eee; }
figure { display: inline-block; margin: 0; }
"""


def build_report(paths: list[Path]) -> str:
    """The report's HTML."""
    runs, sweeps = load_inputs(paths)
    figures = [loss_figure(runs), *value_figures(runs)] if runs else []
    if runs and (histogram := example_weight_figure(runs)) is not None:
        figures.append(histogram)
    divs = "".join(
        f"<div class='figure'>{fig.to_html(full_html=False, include_plotlyjs=False, div_id=f'figure-{i}')}</div>"
        for i, fig in enumerate(figures)
    )
    body = "".join(sweep_section(s) for s in sweeps)
    if runs:
        body += f"<h2>Runs</h2>{runs_table(runs)}{divs}"
    title = "gradtune report: " + ", ".join(p.name for p in paths)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")  # fmt: skip


def write_report(paths: list[Path], out: Path) -> Path:
    write_text(out, build_report(paths))
    return out
