"""Sphinx + myst-nb configuration of the course website (tools/build_site.py stages the sources; never executes)."""

project = "Transfer learning course (第4章 転移学習)"
author = "transfer-learning-course"
extensions = ["myst_nb"]
exclude_patterns = [".doctrees", "jupyter_execute"]

# Notebooks are shown with the outputs of an executed run (build/executed or build/bench): never run here.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # the widgets' JavaScript comes from a CDN: the site stays offline (widgets are made static)
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
myst_heading_anchors = 3
# The errata page's anchors are raw HTML (<a id="errata-1.1">), which Sphinx cannot see: the links work in the
# browser, so "target not found" is noise; results/README_results.md starts at H2 (it is a README section).
suppress_warnings = ["myst.xref_missing", "myst.header"]

# MathJax 3 from the pip package sphinx-mathjax-offline, copied to _static/mathjax by tools/build_site.py: math
# renders offline.  SVG output draws every glyph as a path, so no web font is fetched (MathJax 2's fonts for
# \mathbb and friends were missing from the pip copy: a failed request on the page).
mathjax_path = "mathjax/tex-svg-full.js"
myst_update_mathjax = False  # keep processHtmlClass: typeset the math elements, not notebook outputs
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
    "options": {"ignoreHtmlClass": "document", "processHtmlClass": "math"},  # only the math elements
    "svg": {"fontCache": "global"},
}

html_theme = "sphinx_book_theme"
html_title = "Transfer learning course"
html_static_path = ["_static"]
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "light"}  # else the theme logs "invalid theme mode" on a first visit
html_show_search_summary = False  # summaries are fetched from each page: blocked from file://, so search works offline
html_favicon = "_static/favicon.svg"  # (a missing /favicon.ico is a console error over HTTP)
