"""The course website (build/site/, `make site`) opened in headless Chromium, offline.

Every lesson page loads from file:// with no console error and shows a figure of its executed outputs
(an <img> that has loaded) and its Colab badge; the formulas render with the site's own MathJax; the
search page finds lesson 01 for "LogME", from file:// and over HTTP (`python -m http.server`); and no
page asks any host but the site's own for anything (every other request is blocked and fails the test).

Needs build/site (`make test` builds it before this runs; `make site` alone), Chromium (``/usr/bin/chromium``
or ``$CHROMIUM``) and the ``playwright`` package; without them the tests are skipped with the reason.
"""

from __future__ import annotations

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = sorted(p.stem for p in (ROOT / "exercises").glob("ex*.ipynb"))
PAGES = ["docs/glossary", "docs/references", "docs/errata", "results/README_results", "formulas"]
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")

if not (SITE / "index.html").exists():
    pytest.skip(f"no built site at {SITE}: run `make site` (`make test` builds it first)", allow_module_level=True)


def test_no_page_loads_anything_from_another_host():
    offenders = [str(p.relative_to(SITE)) for p in SITE.rglob("*.html") if EXTERNAL.search(p.read_text())]
    assert not offenders, f"pages that load a script, style or image from another host: {offenders}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request on stderr
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # the browser closing a page mid-transfer
        pass


@pytest.fixture(scope="module")
def http_site():
    """The site served by Python's http.server on 127.0.0.1 (as `python -m http.server -d build/site`)."""
    server = _QuietServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def page(browser):
    """A page whose console errors, page errors and requests to other hosts are recorded (the latter blocked)."""
    page = browser.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))

    def guard(route):
        url = route.request.url
        if url.startswith(("file://", "data:", "blob:", "http://127.0.0.1")):
            return route.continue_()
        page.problems.append(f"request to another host: {url}")
        return route.abort()

    page.route("**/*", guard)
    try:
        yield page
    finally:
        page.close()


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load", timeout=60_000)


def _loaded_figures(page) -> int:
    """How many output images (not the badge) finished loading with a real size."""
    return page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
                                  .filter(i => i.complete && i.naturalWidth > 0).length""")


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_page_loads_with_figures_and_colab_badge(page, lesson):
    _open(page, (SITE / "notebooks" / f"{lesson}.html").as_uri())
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    assert _loaded_figures(page) >= 1, f"{lesson}: no output figure loaded"
    badge = page.locator(f"a[href^='https://colab.research.google.com/github/'][href$='/notebooks/{lesson}.ipynb'] img")
    assert badge.count() == 1 and badge.evaluate("i => i.naturalWidth") > 0, f"{lesson}: no Colab badge"
    if page.locator(".math").count():  # math in a lesson renders like the formulas page's
        _assert_math_rendered(page)
    assert not page.problems, f"{lesson}: " + "\n".join(page.problems)


def _assert_math_rendered(page) -> None:
    """Every math element became MathJax output (an SVG drawing), and none shows a TeX error."""
    count = page.locator(".math").count()
    page.wait_for_function(f"() => document.querySelectorAll('mjx-container svg').length >= {count}",
                           timeout=30_000)
    # a TeX error: an merror node (an undefined macro in red with noundefined, or a parse error)
    errors = page.locator("mjx-merror, [data-mjx-error], g[data-mml-node='merror']")
    assert errors.count() == 0, f"MathJax could not typeset: {errors.first.text_content()}"


def test_formulas_render_with_the_sites_own_mathjax(page):
    _open(page, (SITE / "formulas.html").as_uri())
    assert page.locator(".math").count() >= 5
    _assert_math_rendered(page)
    assert not page.problems, "\n".join(page.problems)


def test_navigation_lists_every_lesson_exercise_and_page(page):
    _open(page, (SITE / "index.html").as_uri())
    links = page.evaluate("() => [...document.querySelectorAll('.bd-sidebar-primary a')].map(a => a.href)")
    expected = [f"notebooks/{n}.html" for n in LESSONS] + [f"exercises/{n}.html" for n in EXERCISES] + \
               [f"{p}.html" for p in PAGES]
    missing = [e for e in expected if not any(link.endswith(e) for link in links)]
    assert not missing, f"not in the navigation: {missing}"
    assert not page.problems, "\n".join(page.problems)


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_search_for_logme_finds_lesson_01(page, http_site, scheme):
    base = SITE.as_uri() if scheme == "file" else http_site
    _open(page, f"{base}/search.html?q=LogME")
    lesson = next(n for n in LESSONS if n.startswith("01_"))
    page.wait_for_function(f"""() => [...document.querySelectorAll('#search-results a')]
                                     .some(a => a.href.includes('notebooks/{lesson}.html'))""", timeout=30_000)
    assert not page.problems, "\n".join(page.problems)
