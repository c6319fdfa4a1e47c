"""GET /docs: the API reference, rendered in the browser by Redoc from the served /openapi.json.

Redoc's standalone bundle is vendored in chalicelib/static/ (`make reference`), so the page needs
nothing but this API: no font, script or style is fetched from elsewhere.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"
BUNDLE = "redoc.standalone.js"

# Relative URLs, so the page works under API Gateway's stage prefix (/api/docs → /api/openapi.json).
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lapse API reference</title>
<style>body {{ margin: 0; }}</style>
</head>
<body>
<div id="reference"></div>
<script src="docs/{bundle}"></script>
<script>
Redoc.init("openapi.json", {{ hideDownloadButton: false, expandResponses: "200,201,202" }},
           document.getElementById("reference"));
</script>
</body>
</html>
"""


def reference_page() -> str:
    return PAGE.format(bundle=BUNDLE)


@cache
def reference_bundle() -> str:
    return (STATIC / BUNDLE).read_text(encoding="utf-8")
