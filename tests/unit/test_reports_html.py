"""`ftctl report --html`: one self-contained page, checked as headless Chromium renders it."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

# A probe the TEST adds to a copy of the page (the page itself has no script): once the page
# has loaded, it writes what the browser rendered into the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener('load', () => {
  const style = (el) => el ? getComputedStyle(el).color : null;
  const out = {
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    tables: document.querySelectorAll('table').length,
    text: document.body.innerText,
    pass_color: style(document.querySelector('.pass')),
    scripts: document.scripts.length,
    external: [...document.querySelectorAll('[src],[href]')]
      .map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => !u.startsWith('data:') && !u.startsWith('#')),
  };
  const pre = document.createElement('pre');
  pre.id = 'ftctl-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if found is None:
        pytest.fail("headless Chromium is missing: `make install` installs it", pytrace=False)
    return found


def render(page: Path, tmp_path: Path) -> dict:
    """What Chromium rendered of ``page`` (through the probe), as a dict."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=20000",  # virtual time: the load event, not a wall clock
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    start = done.stdout.find('<pre id="ftctl-probe">')
    assert start >= 0, f"the page did not finish loading in Chromium: {done.stderr[-2000:]}"
    body = done.stdout[start + len('<pre id="ftctl-probe">') :]
    import html

    return json.loads(html.unescape(body[: body.index("</pre>")]))


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def result_dir(served_run_dir) -> Path:
    return served_run_dir


def test_html_page_renders_tables_checks_faults_and_the_timeline(result_dir, tmp_path):
    page, plot = tmp_path / "run.html", tmp_path / "timeline.png"
    run_cli("report", str(result_dir), "--html", str(page), "--plot", str(plot))
    seen = render(page, tmp_path)
    report = json.loads((result_dir / "report.json").read_text())
    # The one image is the timeline, decoded by the browser at the size the PNG has.
    (image,) = seen["images"]
    assert image[0] and (image[1], image[2]) == png_size(plot.read_bytes())
    assert seen["scripts"] == 1 and seen["external"] == []  # only the probe; nothing fetched
    text = seen["text"]
    for check in report["checks"]:
        assert check["name"] in text
    (fault,) = report["faults"]
    assert fault["pod"] in text and fault["action"] in text
    assert "Phase" in text and "overall" in text  # the phase table of parse
    assert "Server side" in text and "Worker" in text
    assert seen["pass_color"] == "rgb(10, 107, 10)"  # the verdict is styled, not plain text
    assert seen["tables"] >= 5  # summary, group, phases, server, checks, faults


def test_html_page_escapes_what_the_result_directory_says(result_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(result_dir, copy)
    report = json.loads((copy / "report.json").read_text())
    report["checks"][0]["message"] = "<script>document.title='owned'</script><b>x</b>"
    (copy / "report.json").write_text(json.dumps(report))
    page = tmp_path / "page.html"
    run_cli("report", str(copy), "--html", str(page))
    seen = render(page, tmp_path)
    assert seen["scripts"] == 1  # the probe only: the message was not run as a script
    assert "<script>document.title='owned'</script><b>x</b>" in seen["text"]


def test_html_needs_an_html_file_name(result_dir, tmp_path):
    target = tmp_path / "x.txt"
    done = run_cli("report", str(result_dir), "--html", str(target), expect=2)
    assert "x.txt" in done.stderr and ".html" in done.stderr
    assert not target.exists()
