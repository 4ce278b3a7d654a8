"""The evaluation report opens in a browser and shows its tables and plots."""

import numpy as np

from unigendet.data.records import Record
from unigendet.evaluation.detection import DetectorResult, score_report
from unigendet.evaluation.report import plot_curves, plot_histograms, summary_table, write_report
from unigendet.labels import FAKE, REAL


def test_report_renders_in_headless_chromium(chromium, artifacts, tmp_path):
    rng = np.random.default_rng(0)
    records = [Record(f"/x/{i}.png", FAKE if i % 2 else REAL, "g1" if i % 4 < 2 else "g2") for i in range(80)]
    y = np.array([r.label == FAKE for r in records])
    results = [DetectorResult(name, np.clip(rng.normal(0.5 + s * (y - 0.5), 0.2), 0, 1), {})
               for name, s in (("strong", 0.6), ("weak", 0.2))]
    for r in results:
        r.report = score_report(r.scores, records)
    images = plot_curves(results, records, tmp_path) + [plot_histograms(results, records, tmp_path)]
    page_path = write_report(tmp_path, "Browser check", [("Means", summary_table(results))], images,
                             {"command": "pytest", "date": "today", "machine": "here"})
    page = chromium.new_page()
    page.goto(page_path.as_uri())
    widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 3 and all(w > 100 for w in widths), widths
    assert page.locator("table tbody tr").count() == 2
    assert "strong" in page.locator("table").inner_text()
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    assert (artifacts / "report.png").stat().st_size > 10_000
    page.close()
