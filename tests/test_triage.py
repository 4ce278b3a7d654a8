"""The triage report: `detect --report`, `report RESULTS`, the rows it reads back, its pictures, and
the page itself in headless Chromium (counts, order, a filter, a search, a detail view with its heat
map and reasons, the unreadable file listed with its error)."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from unigendet.apps.rows import Row
from unigendet.apps.triage import (
    THUMB_SIDE,
    About,
    Pictures,
    fill_pictures,
    picture_names,
    pictures_folder,
    read_results,
    write_report,
)
from unigendet.cli import main


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Smooth, photo-like images and noisy, upsampled ones (some larger than one 256-px crop, so they
    get a heat map), in two folders, plus a file that is not an image."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "sub").mkdir()
    rng = np.random.default_rng(3)
    for i in range(8):
        w, h = (420, 330) if i % 2 else (200, 160)
        if i < 4:  # smooth gradients with a little sensor-like noise
            y, x = np.mgrid[0:h, 0:w]
            base = np.stack([x * 255 / w, y * 255 / h, np.full_like(x, 90.0)], -1)
            pixels = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
            im = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1))
        else:  # 4x nearest-neighbour upsampled noise: a periodic grid
            small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize((w // 4 * 4, h // 4 * 4), Image.Resampling.NEAREST)
        im.save(root / ("sub" if i % 3 == 0 else ".") / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    return root


@pytest.fixture(scope="module")
def detected(mixed, tmp_path_factory):
    """`detect --explain --report` on the folder, with the threshold at the median p_fake so that both
    verdicts appear; the JSON lines it printed, by path."""
    out = tmp_path_factory.mktemp("report")
    first = out / "first.jsonl"
    with open(first, "w") as f:
        _run(["detect", str(mixed), "--format", "jsonl", "--quiet"], f)
    scores = sorted(json.loads(line)["p_fake"] for line in first.read_text().splitlines() if "p_fake" in line)
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    rows = out / "rows.jsonl"
    with open(rows, "w") as f:
        _run(["detect", str(mixed), "--format", "jsonl", "--explain", "--quiet", "--threshold", str(threshold),
              "--report", str(out / "report.html")], f)
    by_path = {r["path"]: r for r in map(json.loads, rows.read_text().splitlines())}
    return out, by_path, threshold


def _run(argv, stdout):
    import contextlib

    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0


def page_rows(page: Path) -> list[dict]:
    text = page.read_text()
    return json.loads(re.search(r'<script type="application/json" id="rows">(.*?)</script>', text, re.S)[1])


def test_rows_round_trip_through_json_lines():
    rows = [Row("a.png", "fake", 0.9, explanation="Because.", attribution={"method": "linear"}, heatmap=[[0.1]]),
            Row("b.png", error="empty file"),
            Row("c.png", "uncertain", 0.7, spread=0.3, uncertain="the crops disagree")]
    for r in rows:
        assert Row.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert list(rows[1].to_json()) == ["path", "error"]
    with pytest.raises(ValueError, match="path"):
        Row.from_json({"label": "fake"})


def test_saved_results_are_read_back_from_json_lines_and_scan_shards(tmp_path):
    good = [Row("a.png", "real", 0.1), Row("b.png", error="not a readable image")]
    lines = "".join(json.dumps(r.to_json()) + "\n" for r in good)
    (tmp_path / "out.jsonl").write_text(lines + '{"path": "c.png", "lab')  # torn by a kill: skipped
    assert read_results(tmp_path / "out.jsonl") == good
    (tmp_path / "bad.jsonl").write_text(lines + "not json\n" + lines)
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        read_results(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nowhere.jsonl")
    scan = tmp_path / "scan"
    scan.mkdir()
    columns = ["path", "label", "p_fake", "spread", "uncertain", "error"]
    (scan / "1_000000_000000.json").write_text(  # a scan's shard: every column, nulls included
        json.dumps(dict(zip(columns, ["a.png", "uncertain", 0.8, 0.3, "the crops disagree", None]))) + "\n")
    (scan / "_SUCCESS").write_text("")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({c: [v] for c, v in zip(columns, ["b.png", None, None, None, None, "empty file"])}),
                   scan / "2_000000_000000.parquet")
    assert read_results(scan) == [Row("a.png", "uncertain", 0.8, spread=0.3, uncertain="the crops disagree"),
                                  Row("b.png", error="empty file")]


def test_pictures_are_small_previews_only_for_the_suspicious_and_reused(tmp_path):
    images = {}
    for i, label in enumerate(["fake", "real", "uncertain"]):
        path = tmp_path / f"{label}.png"
        Image.fromarray(np.full((900, 1200 + i, 3), 40 * i, np.uint8)).save(path)
        images[str(path)] = label
    rows = [Row(p, label, 0.5) for p, label in images.items()] + [Row(str(tmp_path / "gone.png"), "fake", 0.9)]
    pictures = Pictures(tmp_path / "pics", "suspicious")
    gone = fill_pictures(rows, pictures)
    pictures.close()
    assert gone == {str(tmp_path / "gone.png"): "no such file"}
    for path, label in images.items():
        thumb, preview = picture_names(path)
        assert max(Image.open(tmp_path / "pics" / thumb).size) == THUMB_SIDE
        assert (tmp_path / "pics" / preview).is_file() == (label != "real")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "pics").iterdir()}
    again = Pictures(tmp_path / "pics", "suspicious")
    assert not any(again.missing(r) for r in rows[:3])
    fill_pictures(rows, again)
    again.close()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "pics").iterdir()} == before  # nothing redone
    assert not [p for p in (tmp_path / "pics").iterdir() if p.name.startswith(".")]  # no temporary left
    with pytest.raises(ValueError, match="previews"):
        Pictures(tmp_path / "x", "some")


def test_the_page_keeps_hostile_paths_as_data_and_allows_only_its_own_scripts(tmp_path):
    hostile = 'evil</script><script>alert(1)</script><img src=x onerror=alert(2)>.png'
    page = write_report(tmp_path / "r.html", [Row(hostile, "fake", 0.99), Row("ok.png", "real", 0.1)], About())
    text = page.read_text()
    assert "<script>alert(1)" not in text and page_rows(page)[0]["path"] == hostile
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)[1]
    assert "default-src 'none'" in csp and "connect-src" not in csp  # nothing fetched: default-src covers it
    import base64
    import hashlib

    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert len(scripts) == 2
    for s in scripts:
        assert f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" in csp


def test_detect_report_holds_every_row_and_report_rebuilds_it(detected, tmp_path):
    out, by_path, _ = detected
    page = out / "report.html"
    rows = page_rows(page)
    assert {r["path"] for r in rows} == set(by_path) and len(rows) == 9
    for r in rows:
        assert {k: v for k, v in r.items() if k not in ("thumb", "preview", "original")} == by_path[r["path"]]
        assert ("thumb" in r) == ("error" not in r)
        assert (pictures_folder(page).parent / r["thumb"]).is_file() if "thumb" in r else True
    assert any("heatmap" in r for r in rows) and all("explanation" in r for r in rows if "error" not in r)
    # the same page from the saved rows, without scoring (its pictures made again)
    assert main(["report", str(out / "rows.jsonl"), "--out", str(tmp_path / "again.html"), "--quiet"]) == 0
    again = page_rows(tmp_path / "again.html")
    def own(r):
        return {k: v for k, v in r.items() if k not in ("thumb", "preview", "original")}, "preview" in r

    assert [own(r) for r in again] == [own(r) for r in rows]
    assert len(os.listdir(tmp_path / "again_files")) == len(os.listdir(pictures_folder(page)))
    assert main(["report", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x.html")]) == 2
    # a short page for a large scan: only some verdicts' rows (and pictures), every row still counted
    assert main(["report", str(out / "rows.jsonl"), "--out", str(tmp_path / "short.html"), "--only", "fake",
                 "unreadable", "--quiet"]) == 0
    short = page_rows(tmp_path / "short.html")
    assert sorted(r["path"] for r in short) == sorted(p for p, r in by_path.items()
                                                      if r.get("label", "unreadable") in ("fake", "unreadable"))
    about = json.loads(re.search(r'id="about">(.*?)</script>', (tmp_path / "short.html").read_text(), re.S)[1])
    assert sum(about["counts"].values()) == len(by_path) and about["only"] == ["fake", "unreadable"]
    assert len(os.listdir(tmp_path / "short_files")) < len(os.listdir(tmp_path / "again_files"))


def test_a_resumed_detect_reports_every_row_of_its_file(mixed, tmp_path):
    resume = tmp_path / "out.jsonl"
    first = [p for p in map(str, sorted(mixed.rglob("*.jpg")))]
    assert main(["detect", *first, "--resume", str(resume), "--quiet"]) == 0
    assert main(["detect", str(mixed), "--resume", str(resume), "--quiet", "--report", str(tmp_path / "r.html")]) == 0
    rows = page_rows(tmp_path / "r.html")
    assert len(rows) == len({r["path"] for r in rows}) == len(read_results(resume)) == 9


def test_the_report_in_headless_chromium(detected, chromium, artifacts):
    """Counts per verdict, most suspicious first, a verdict filter and a path search, and a detail
    view with the image, its heat map, the attribution chart and the reasons."""
    out, by_path, threshold = detected
    counts = {k: sum(r.get("label", "unreadable") == k for r in by_path.values())
              for k in ("fake", "uncertain", "real", "unreadable")}
    assert counts["fake"] and counts["real"] and counts["unreadable"] == 1
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.goto((out / "report.html").as_uri())
    for kind, n in counts.items():
        assert page.locator(f'#kinds [data-kind="{kind}"] .n').inner_text() == str(n)
    cards = page.locator("#grid .card")
    assert cards.count() == len(by_path)
    shown = [float(t) if t else None for t in cards.locator(".p").all_inner_texts()]
    scored = [p for p in shown if p is not None]
    assert scored == sorted(scored, reverse=True) and shown[-1] is None  # unreadable last
    assert "not a readable image" in page.locator("#unreadable").inner_text()
    page.wait_for_function("Array.from(document.querySelectorAll('#grid img')).every(i => i.complete)")
    assert page.evaluate("Array.from(document.querySelectorAll('#grid img')).every(i => i.naturalWidth > 0)")
    page.click('#kinds [data-kind="fake"]')
    assert cards.count() == counts["fake"] and all(c == "fake" for c in cards.locator(".v").all_inner_texts())
    page.click('#kinds [data-kind="fake"]')
    assert cards.count() == len(by_path)
    page.fill("#search", "sub/")
    assert cards.count() == sum("/sub/" in p for p in by_path) > 0
    page.fill("#search", "")
    page.select_option("#sort", "path")
    assert cards.locator(".name").first.inner_text() == "broken.jpg"
    page.select_option("#sort", "score")
    top = max((r for r in by_path.values() if "heatmap" in r), key=lambda r: r["p_fake"])
    page.locator(f'#grid .card[title="{top["path"]}"]').click()
    page.wait_for_function("document.getElementById('detail').open && document.getElementById('d-image').complete")
    assert page.locator("#d-path").inner_text() == top["path"]
    assert page.locator("#d-verdict").get_attribute("data-label") == top["label"]
    assert page.locator("#d-reasons").inner_text().startswith(top["explanation"].split(".")[0])
    assert page.locator("#d-chart .contrib").count() == len(top["attribution"]["contributions"])
    painted = page.evaluate("""() => { const c = document.getElementById('d-heat');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return [c.width, n]; }""")
    assert painted[0] > 100 and painted[1] > 0.9 * painted[0] * 100  # the whole image is tinted
    page.screenshot(path=str(artifacts / "triage-detail.png"))
    page.keyboard.press("ArrowRight")
    assert page.locator("#d-path").inner_text() != top["path"]
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('detail').open")
    page.screenshot(path=str(artifacts / "triage.png"), full_page=True)
    assert not problems, problems
    page.close()
