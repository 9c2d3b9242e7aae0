"""A Sphinx extension for the book's pages: each JavaScript asset once per page.

sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = ...``) when Sphinx is about to read
the sources, and in a Jupyter Book build it reached every page twice: each page declared the same ``const`` twice
and the browser stopped the second script ("Identifier 'THEBE_JS_URL' has already been declared").
``scripts/check_book.py`` fails a page that does this.
"""

from __future__ import annotations


def unique_scripts(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop a page's repeated script assets (same file or inline body, same attributes), keeping the first."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        # an inline script's filename is None or "" depending on who added it: the same script either way
        key = (str(getattr(js, "filename", js) or ""), getattr(js, "priority", None),
               tuple(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    # in place: the list is the builder's own, to which later handlers (Sphinx's MathJax) still add scripts
    scripts[:] = kept


def setup(app) -> dict:
    """Register the page hook."""
    # first: html-page-context stops at the first handler that returns a template name (emit_firstresult)
    app.connect("html-page-context", unique_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
