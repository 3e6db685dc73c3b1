"""The Meltano plugin definition of this loader, made from what `--about` says.

`meltano-plugin.yml` at the repository root is this module's output; a test keeps the two
identical. After a settings change, regenerate it:

    python -m target_usage.plugin_def > meltano-plugin.yml

Every setting gets the Meltano `kind` that makes `meltano config set` and `TARGET_USAGE_*`
variables arrive typed: Meltano casts a string by its kind before writing the loader's
config. JSON Schema `number` settings are declared `integer`, because Meltano 4 casts the
`decimal` kind to a `Decimal` it then cannot write into the config file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from target_usage.target import TargetUsage

NAMESPACE = "target_usage"
# The distribution's name, as a package index would install it; a checkout installs with
# its path instead (README: "Add target-usage to your Meltano project").
PIP_URL = "target-usage"
KIND_OF_TYPE = {
    "boolean": "boolean",
    "integer": "integer",
    "number": "integer",
    "object": "object",
    "array": "array",
    "string": "string",
}
HEADER = """\
# Meltano plugin definition of the target-usage loader (Meltano 4):
#   meltano add loader target-usage --from-ref <this file's path or URL>
# Generated from the settings schema: python -m target_usage.plugin_def > meltano-plugin.yml
"""


def kind_of(spec: dict[str, Any]) -> str:
    """The Meltano kind of a setting's JSON Schema."""
    if spec.get("secret"):
        return "password"
    if "enum" in spec:
        return "options"
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    return KIND_OF_TYPE.get(types[0], "string") if len(types) == 1 else "string"


def setting(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kind = kind_of(spec)
    entry: dict[str, Any] = {
        "name": name,
        "label": name.replace("_", " ").capitalize(),
        "kind": kind,
    }
    if spec.get("default") is not None:
        entry["value"] = spec["default"]
    if kind == "options":
        entry["options"] = [
            {"label": str(value).replace("_", " ").capitalize(), "value": value}
            for value in spec["enum"]
            if value is not None
        ]
    if kind == "password":
        entry["sensitive"] = True
    if spec.get("description"):
        entry["description"] = spec["description"]
    return entry


def definition(pip_url: str = PIP_URL) -> dict[str, Any]:
    """The plugin definition, as `meltano add --from-ref` reads it."""
    about = TargetUsage._get_about_info()
    # As `--about --format=json` prints them (enum defaults become their string values).
    properties = json.loads(json.dumps(about.settings["properties"]))
    return {
        "name": TargetUsage.name,
        "namespace": NAMESPACE,
        "label": "target-usage (Skalin and Hull)",
        "description": about.description,
        "pip_url": pip_url,
        "executable": TargetUsage.name,
        "capabilities": [str(c) for c in about.capabilities],
        "settings": [setting(name, spec) for name, spec in properties.items()],
    }


def render(pip_url: str = PIP_URL) -> str:
    body = yaml.safe_dump(definition(pip_url), sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


if __name__ == "__main__":
    sys.stdout.write(render())
