"""Tables, plots and a self-contained HTML report for detection results."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.records import Record
from ..labels import FAKE
from ..metrics import pr_curve, roc_curve
from .detection import DetectorResult, fmt

MEAN_COLS = [("acc_real", "acc real"), ("acc_fake", "acc fake"), ("acc", "acc@0.5"), ("ap", "AP"), ("auc", "AUC"),
             ("macro_f1", "macro-F1"), ("acc_calibrated", "acc@val-thr"), ("ece", "ECE"),
             ("oracle_acc", "oracle acc (upper bound)")]


def summary_table(results: Sequence[DetectorResult]) -> str:
    """Markdown: one row per detector, means over generators (percent)."""
    lines = ["| detector | " + " | ".join(c for _, c in MEAN_COLS) + " | threshold |",
             "|---" * (len(MEAN_COLS) + 2) + "|"]
    for r in results:
        m = r.report["mean"]
        cells = [fmt(m.get(k)) for k, _ in MEAN_COLS]
        lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {r.threshold:.3f} |")
    return "\n".join(lines)


def per_generator_table(results: Sequence[DetectorResult], metric: str = "auc") -> str:
    gens = list(results[0].report["per_generator"])
    lines = ["| generator | " + " | ".join(r.name for r in results) + " |", "|---" * (len(results) + 1) + "|"]
    for g in gens:
        lines.append(f"| {g} | " + " | ".join(fmt(r.report["per_generator"][g].get(metric)) for r in results) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{fmt(r.report['mean'].get(metric))}**" for r in results) + " |")
    return "\n".join(lines)


def degradation_table(results: Sequence[DetectorResult], metric: str = "auc") -> str:
    specs = [s for s in results[0].degraded]
    if not specs:
        return ""
    head = "| detector | clean | " + " | ".join(specs) + " |"
    lines = [head, "|---" * (len(specs) + 2) + "|"]
    for r in results:
        row = [fmt(r.report["mean"].get(metric))] + [fmt(r.degraded[s]["mean"].get(metric)) for s in specs]
        lines.append(f"| {r.name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def text_table(results: Sequence[DetectorResult]) -> str:
    rows = [r for r in results if "text" in r.report]
    if not rows:
        return ""
    lines = ["| detector | verdict acc | unparsed | ROUGE-L | CSS |", "|---|---|---|---|---|"]
    for r in rows:
        t = r.report["text"]
        lines.append(f"| {r.name} | {fmt(t['text_acc'])} | {fmt(t['unparsed_rate'])} | {fmt(t.get('rouge_l'))} "
                     f"| {fmt(t.get('css'))} |")
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _figure().close(fig)
    return path


def plot_curves(results: Sequence[DetectorResult], records: Sequence[Record], out: Path) -> list[Path]:
    plt = _figure()
    y = np.array([r.label == FAKE for r in records])
    roc, ax_roc = plt.subplots(figsize=(5, 4.5))
    pr, ax_pr = plt.subplots(figsize=(5, 4.5))
    for r in results:
        fpr, tpr, _ = roc_curve(r.scores, y)
        ax_roc.plot(fpr, tpr, label=f"{r.name} (AUC {100 * r.report['all']['auc']:.1f})")
        prec, rec, _ = pr_curve(r.scores, y)
        ax_pr.step(np.r_[0, rec], np.r_[prec[0], prec], where="post",
                   label=f"{r.name} (AP {100 * r.report['all']['ap']:.1f})")
    ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax_roc.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate", title="ROC, all images")
    ax_pr.set(xlabel="recall (fakes)", ylabel="precision", title="Precision-recall, fake = positive", ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=7)
    return [_save(roc, out / "roc.png"), _save(pr, out / "pr.png")]


def plot_histograms(results: Sequence[DetectorResult], records: Sequence[Record], out: Path) -> Path:
    plt = _figure()
    y = np.array([r.label == FAKE for r in records])
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        bins = np.linspace(0, 1, 26)
        ax.hist(r.scores[~y], bins=bins, alpha=0.6, label="real")
        ax.hist(r.scores[y], bins=bins, alpha=0.6, label="fake")
        ax.axvline(r.threshold, color="k", lw=0.8, ls="--")
        ax.set(title=r.name, xlabel="p_fake")
        ax.legend(fontsize=7)
    return _save(fig, out / "scores.png")


def plot_tsne(features: np.ndarray, records: Sequence[Record], title: str, path: Path, seed: int = 0) -> Path:
    """2-D t-SNE of a detector's representation, coloured by real vs each generator's fakes."""
    from sklearn.manifold import TSNE

    plt = _figure()
    emb = TSNE(n_components=2, perplexity=min(30, max(5, len(features) // 4)), init="pca",
               random_state=seed).fit_transform(np.asarray(features, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    groups = ["real"] + sorted({r.generator for r in records if r.label == FAKE})
    for g in groups:
        m = np.array([(r.label != FAKE) if g == "real" else (r.label == FAKE and r.generator == g) for r in records])
        ax.scatter(emb[m, 0], emb[m, 1], s=8, label=g if g == "real" else f"fake: {g}",
                   c="k" if g == "real" else None, alpha=0.7)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize=6, markerscale=1.5)
    return _save(fig, path)


# -- the report -----------------------------------------------------------------------------


def _md_to_html_table(md: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in md.splitlines() if line.strip()]
    if len(rows) < 2:
        return ""
    head, body = rows[0], rows[2:]
    th = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    tr = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip().strip('*'))}</td>" for c in row) + "</tr>"
                 for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


def write_report(out: Path, title: str, sections: list[tuple[str, str]], images: list[Path], meta: dict) -> Path:
    """`report.md` and a self-contained `report.html` (images embedded as data URIs)."""
    md = [f"# {title}", "", f"`{meta.get('command', '')}`  ", f"{meta.get('date', '')} on {meta.get('machine', '')}",
          ""]
    for heading, table in sections:
        if table:
            md += [f"## {heading}", "", table, ""]
    md += [f"![{p.stem}]({p.name})" for p in images]
    (out / "report.md").write_text("\n".join(md) + "\n")
    figs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{p.stem}</figcaption></figure>" for p in images)
    tables = "".join(f"<h2>{html.escape(h)}</h2>{_md_to_html_table(t)}" for h, t in sections if t)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
figure{{display:inline-block;margin:.5em}}img{{max-width:100%}}code{{background:#eee}}</style></head><body>
<h1>{html.escape(title)}</h1><p><code>{html.escape(meta.get('command', ''))}</code><br>
{html.escape(str(meta.get('date', '')))} on {html.escape(str(meta.get('machine', '')))}</p>
{tables}<h2>Figures</h2>{figs}
<script type="application/json" id="meta">{html.escape(json.dumps(meta))}</script></body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
