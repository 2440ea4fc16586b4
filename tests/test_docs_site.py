"""The documentation site builds with `mkdocs build --strict`: no warning of any kind.

Strict mode fails on broken links between pages, pages left out of the nav, and griffe's
docstring warnings (a documented parameter the signature lacks, a parameter without a type).
The API page and the math of the model page are checked to have rendered.

The site works offline: no built page loads a script, stylesheet, font or other resource from
another host (material's web fonts are off, and docs/hooks/mathml.py renders the math to MathML
at build time instead of MathJax from a CDN). Where a Chromium binary is installed, a headless
Chromium lays out an equation of the valuation page as MathML.

The site is built once per module (the `site` fixture) and every test reads that build.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")
pytest.importorskip("latex2mathml")

ROOT = Path(__file__).resolve().parents[1]
MATHML_NS = "http://www.w3.org/1998/Math/MathML"


@dataclass(frozen=True)
class Site:
    path: Path
    output: str


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    return Site(site_dir, output)


def test_site_builds_strict_without_warnings(site):
    warnings = [line for line in site.output.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs build warned:\n" + "\n".join(warnings)

    api = (site.path / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in ("invlend.simulate", "invlend.Scenario", "invlend.Warrant", "invlend.load"):
        assert f'id="{anchor}"' in api, f"the API page does not document {anchor}"
    model = (site.path / "model.html").read_text(encoding="utf-8")
    assert '<div class="arithmatex"><math' in model, "display math on the model page: no MathML"
    assert '<span class="arithmatex"><math' in model, "inline math on the model page: no MathML"
    assert not list(site.path.rglob("*.py")), "Python files were copied into the site"


# ---------------------------------------------------------------------------------------------
# Offline: no resource from another host.

_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
# <link> relations that only describe a page and fetch nothing; any other (stylesheet,
# preload, modulepreload, prefetch, preconnect, dns-prefetch, icon, manifest) must stay local.
_NON_FETCHING_RELS = {"canonical", "alternate", "author", "license", "next", "prev", "me", "help"}
# Attributes whose URL the browser loads by itself (an <a href> is followed only on a click).
_LOADED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<url>[^'")]*)\1\s*\)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*['"]?(?P<url>[^'")\s;]+)""", re.IGNORECASE)


def _css_externals(css: str) -> list[str]:
    urls = [m.group("url") for m in _CSS_URL.finditer(css)]
    urls += [m.group("url") for m in _CSS_IMPORT.finditer(css)]
    return [url for url in urls if _EXTERNAL.match(url)]


def _is_external(value: str, attr: str) -> bool:
    if attr == "srcset":  # "a.png 1x, https://host/b.png 2x"
        return any(_EXTERNAL.match(part) for part in value.split(","))
    return bool(_EXTERNAL.match(value))


class _ExternalResources(HTMLParser):
    """Collect the URLs on other hosts that a page loads on its own."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        values = {name: value or "" for name, value in attrs}
        if tag == "link":
            rels = set(values.get("rel", "").lower().split())
            href = values.get("href", "")
            if _is_external(href, "href") and not rels <= _NON_FETCHING_RELS:
                self.found.append(f"<link rel={values.get('rel', '')!r} href={href!r}>")
        for attr in _LOADED.get(tag, ()):
            if _is_external(values.get(attr, ""), attr):
                self.found.append(f"<{tag} {attr}={values[attr]!r}>")
        for url in _css_externals(values.get("style", "")):
            self.found.append(f"<{tag} style> url {url!r}")
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found += [f"<style> url {url!r}" for url in _css_externals(data)]


def test_external_resource_scan_catches_what_it_should():
    page = """
        <link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>
        <link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">
        <link rel="stylesheet" href="assets/main.css"><link rel="canonical" href="https://x.org/">
        <script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
        <script src="js/local.js"></script><a href="https://doi.org/10.1/x">a paper</a>
        <img srcset="a.png 1x, https://host/b.png 2x"><div style="background:url('http://h/i')">
        <style>@import "https://h/a.css"; p { background: url(data:image/png;base64,AA) }</style>
    """
    parser = _ExternalResources()
    parser.feed(page)
    assert len(parser.found) == 6, parser.found
    assert _css_externals("@font-face{src:url(https://fonts.gstatic.com/r.woff2)}")
    assert _css_externals("@import url(http://h/a.css);")
    assert not _css_externals("a{background:url(../images/x.svg)} b{mask:url(data:x)}")


def test_no_page_loads_a_resource_from_another_host(site):
    pages = sorted(site.path.rglob("*.html"))
    assert len(pages) >= 10, f"only {len(pages)} pages built"
    offenders = []
    for page in pages:
        parser = _ExternalResources()
        parser.feed(page.read_text(encoding="utf-8"))
        offenders += [f"{page.relative_to(site.path)}: {item}" for item in parser.found]
    for sheet in sorted(site.path.rglob("*.css")):
        css = sheet.read_text(encoding="utf-8")
        offenders += [f"{sheet.relative_to(site.path)}: url {url!r}" for url in _css_externals(css)]
    assert not offenders, "the built site loads resources from other hosts:\n" + "\n".join(
        offenders
    )


def test_all_math_is_mathml(site):
    # No formula is left as TeX for a script to typeset: every arithmatex wrapper holds MathML.
    wrapper = re.compile(r'<(span|div) class="arithmatex">(.{0,5})', re.DOTALL)
    count = 0
    for page in sorted(site.path.rglob("*.html")):
        for match in wrapper.finditer(page.read_text(encoding="utf-8")):
            count += 1
            assert match.group(2) == "<math", f"{page.name}: TeX left unrendered: {match.group(0)}"
    assert count > 500, f"only {count} formulas in the site"


# ---------------------------------------------------------------------------------------------
# A browser lays the math out.

_BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")

# Run in a copy of the valuation page: the first display fraction must be MathML laid out by the
# browser, numerator above denominator (a browser without MathML would run them on one line).
_PROBE = """<script>
(() => {
  const maths = document.querySelectorAll("math");
  const frac = document.querySelector("div.arithmatex mfrac");
  const result = {maths: maths.length, ns: maths.length ? maths[0].namespaceURI : null};
  if (frac) {
    const num = frac.children[0].getBoundingClientRect();
    const den = frac.children[1].getBoundingClientRect();
    result.stacked = num.height > 0 && den.height > 0 && num.bottom <= den.top + 1;
    result.fracHeight = frac.getBoundingClientRect().height;
  }
  document.body.setAttribute("data-mathml-probe", JSON.stringify(result));
})();
</script>"""


def _chromium() -> str | None:
    return next((path for name in _BROWSERS if (path := shutil.which(name))), None)


def _dump_dom(browser: str, url: str, profile: Path) -> str:
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{browser} --dump-dom failed:\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_chromium_renders_the_equations(site, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip(f"no Chromium binary on PATH (looked for {', '.join(_BROWSERS)})")
    page = site.path / "valuation.html"
    dom = _dump_dom(browser, page.as_uri(), tmp_path / "profile")
    assert dom.count("<math") > 100, "the valuation page holds no rendered <math> elements"

    probe = site.path / "valuation-mathml-probe.html"
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    try:
        dom = _dump_dom(browser, probe.as_uri(), tmp_path / "profile")
    finally:
        probe.unlink()
    match = re.search(r'data-mathml-probe="([^"]*)"', dom)
    assert match, "the probe script did not run"
    result = json.loads(html.unescape(match.group(1)))
    assert result["ns"] == MATHML_NS, result
    assert result["maths"] > 100, result
    assert result.get("stacked"), f"a display fraction is not laid out as MathML: {result}"
