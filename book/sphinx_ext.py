"""A Sphinx extension for the book: one copy of each page script.

sphinx-thebe and sphinx-togglebutton add their inline settings each time
Sphinx re-reads the sources; when myst-nb re-reads after executing, a page
gets two copies, and thebe's `const` declared twice is a console error.
"""


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen = set()
    kept = []
    for script in context.get("script_files", []):
        # the same inline script arrives once with filename None, once with ""
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {})
        key = (str(filename), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    # Early: a later handler may return a template name, which ends the event.
    app.connect("html-page-context", _drop_repeated_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
