"""Each page lists each script once.

sphinx-thebe (which Jupyter Book always loads) and sphinx-togglebutton add their inline configuration scripts
again when Sphinx reads the sources a second time (once with the file name None, once ''), so every page declared
``const THEBE_JS_URL`` twice and the browser reported "Identifier 'THEBE_JS_URL' has already been declared" on
every page (tests/browser caught it).
"""


from typing import Any


def unique_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Keep the first of each (file, attributes) pair in the page's script list, in order."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, bool]:
    app.connect("html-page-context", unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
