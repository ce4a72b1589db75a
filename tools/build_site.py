"""Build the course website (static HTML, works offline) from already-executed notebooks: ``make site``.

Usage: python tools/build_site.py [--source DIR] [--out build/site]

Nothing is executed here.  The lessons come from an executed run: ``build/executed/`` (the nbval run of
``make test`` writes it, tools/nbexecuted.py) or, if that lacks a lesson, the newest ``build/bench/<profile>/``
(``make bench``).  The exercises are the student versions ``exercises/ex*.ipynb``; the glossary, references,
errata (docs/) and the results table (results/README_results.md) are pages too.  Everything is staged in
``build/site_src/`` in the repository's layout (so the notebooks' relative links work) and built by Sphinx +
myst-nb (docs/site/conf.py) into ``build/site/``.  MathJax is served from the site itself: no CDN, no network.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
WIDGET_NOTE = ("*(Interactive widget: open this notebook in Colab or JupyterLab to move its sliders; "
               "the figure below shows its first state.)*")
BENCH_CELL = "from course_lib.bench_record import recorded as _bench_recorded"  # the cell tools/bench.py appends
PAGES = ["docs/glossary.md", "docs/references.md", "docs/errata.md", "results/README_results.md"]


class SiteError(RuntimeError):
    """No usable executed notebooks (the message says how to make them)."""


def lesson_names(root: Path = ROOT) -> list[str]:
    """The lesson notebooks' file names, ``["00_setup_and_data.ipynb", ...]``."""
    return sorted(p.name for p in (root / "notebooks").glob("*.ipynb"))


def candidate_sources(root: Path = ROOT) -> list[Path]:
    """``build/executed`` first, then every ``build/bench/<profile>``, newest executed lesson first."""
    benches = [d for d in (root / "build" / "bench").glob("*") if any(d.glob("notebooks/*.ipynb"))]
    benches.sort(key=lambda d: max(p.stat().st_mtime for p in d.glob("notebooks/*.ipynb")), reverse=True)
    return [root / "build" / "executed", *benches]


def select_source(root: Path = ROOT) -> Path:
    """The first candidate folder holding an executed copy of every lesson; SiteError when none does."""
    lessons = lesson_names(root)
    if not lessons:
        raise SiteError(f"no lesson notebooks in {root / 'notebooks'}")
    missing = {}
    for source in candidate_sources(root):
        missing[source] = [n for n in lessons if not (source / "notebooks" / n).is_file()]
        if not missing[source]:
            return source
    detail = "\n".join(f"  {d.relative_to(root)}: missing {', '.join(m)}" for d, m in missing.items())
    raise SiteError("no executed copy of every lesson to build the site from:\n" + detail + "\n"
                    "Make one (the site never re-executes notebooks): `make test` or "
                    "`.venv/bin/python tools/run_notebooks.py notebooks` writes build/executed/; "
                    "`make bench` writes build/bench/<profile>/. Then run `make site` again.")


def code_sources(nb: dict) -> list[str]:
    """The code cells' sources of a notebook (JSON dict), to tell a stale executed copy."""
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def static_output(output: dict) -> dict | None:
    """A widget output made static: a progress bar is dropped (None), a control panel becomes a note."""
    data = output.get("data", {})
    if WIDGET not in data:
        return output
    if "children=" not in "".join(data.get("text/plain", "")):  # a tqdm bar frozen at 0 %
        return None
    return {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": WIDGET_NOTE}}


def prepare_notebook(nb: dict) -> dict:
    """The notebook (JSON dict) for the web: static widget outputs, the Colab badge image served locally,
    no measurement cell of ``make bench``."""
    nb["cells"] = [c for c in nb["cells"] if BENCH_CELL not in "".join(c["source"])]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [o for o in map(static_output, cell.get("outputs", [])) if o is not None]
        else:
            source = "".join(cell["source"])
            cell["source"] = source.replace(COLAB_BADGE, "../_static/colab-badge.svg")
    nb["metadata"].pop("widgets", None)
    return nb


def _mathjax_dir() -> Path:
    """MathJax 3 (components and SVG output, which draws glyphs as paths: no web fonts to fetch) from the pinned
    pip package sphinx-mathjax-offline, served from the site's _static/mathjax."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise SiteError("MathJax is missing: `make install` (environment.yml pins sphinx-mathjax-offline)")
    return Path(spec.submodule_search_locations[0]) / "static" / "mathjax"


def stage(source: Path, src: Path, root: Path = ROOT) -> list[str]:
    """Copy the site's sources into ``src`` in the repository's layout; returns the stale lessons' names."""
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(root / "docs" / "site", src)
    shutil.copytree(_mathjax_dir(), src / "_static" / "mathjax")
    stale = []
    for folder, origin in (("notebooks", source / "notebooks"), ("exercises", root / "exercises")):
        (src / folder).mkdir()
        for path in sorted((root / folder).glob("*.ipynb")):
            nb = prepare_notebook(json.loads((origin / path.name).read_text()))
            if code_sources(nb) != code_sources(json.loads(path.read_text())):
                stale.append(f"{folder}/{path.name}")
            (src / folder / path.name).write_text(json.dumps(nb))
    for page in PAGES:
        (src / page).parent.mkdir(exist_ok=True)
        shutil.copyfile(root / page, src / page)
    return stale


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="folder with executed notebooks/ (default: see above)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = parser.parse_args(argv)
    try:
        source = args.source or select_source()
    except SiteError as err:
        print(f"make site: {err}", file=sys.stderr)
        return 2
    start, src = time.monotonic(), ROOT / "build" / "site_src"
    print(f"Building the site from the executed notebooks in {source}")
    for name in stage(source, src):
        print(f"  warning: {name}: its code differs from the executed copy's; rerun the notebooks for fresh outputs")
    shutil.rmtree(args.out, ignore_errors=True)
    code = subprocess.call([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(src / ".doctrees"),
                            str(src), str(args.out)])
    if code == 0:
        print(f"Site built in {time.monotonic() - start:.0f} s: open {args.out / 'index.html'} "
              f"(or `python -m http.server -d {args.out}`)")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
