"""Draw a W&B custom chart the way W&B does, for the tests: the preset's Vega-Lite spec with its
``${field:x}`` and ``${string:x}`` placeholders filled in (a test helper, not in the package)."""

from __future__ import annotations

import copy
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{(field|string):([A-Za-z0-9_]+)\}")


def render_chart(spec: dict[str, Any], fields: dict[str, str], strings: dict[str, str]
                 ) -> dict[str, Any]:
    """The spec as W&B draws it: every ``${field:x}`` replaced by ``fields[x]`` and every
    ``${string:x}`` by ``strings[x]`` (a KeyError names a placeholder left without a value)."""
    values = {"field": fields, "string": strings}

    def fill(node):
        if isinstance(node, dict):
            return {fill(k): fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):
            return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)][m.group(2)]), node)
        return node

    return fill(copy.deepcopy(spec))
