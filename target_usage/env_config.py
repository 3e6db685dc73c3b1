"""Settings from `TARGET_USAGE_<SETTING>` variables (`--config=ENV`), typed by the schema.

The SDK's own parser turns integers and booleans only, and any word but "true", "1", "yes"
or "on" into `false`; numbers stay strings and fail validation with the value but not the
variable. Here every value is parsed by its schema type, and one that does not parse is
reported with the variable and the type expected.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dotenv import find_dotenv
from dotenv.main import DotEnv
from singer_sdk.exceptions import ConfigValidationError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def variable_name(prefix: str, setting: str) -> str:
    return prefix + setting.upper().replace("-", "_")


def parse_environment(
    schema: Mapping[str, Any], prefix: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings set in the environment (and a `.env` in the working directory), typed.

    Raises one `ConfigValidationError` naming every variable that does not parse.
    """
    if environ is None:
        # As the SDK does: a `.env` fills in variables the environment does not set.
        DotEnv(find_dotenv(usecwd=True)).set_as_environment_variables()
        environ = os.environ
    config: dict[str, Any] = {}
    problems: list[str] = []
    for setting, spec in schema.get("properties", {}).items():
        name = variable_name(prefix, setting)
        if name not in environ:
            continue
        kind = json_type(spec)
        try:
            config[setting] = PARSERS.get(kind, str)(environ[name])
        except ValueError as error:
            problems.append(f"{name} must be {EXPECTED[kind]} for '{setting}' ({error})")
    if problems:
        raise ConfigValidationError("Config validation failed", errors=problems)
    return config


def json_type(spec: Mapping[str, Any]) -> str:
    """The one JSON type of a setting besides null ("string" when it is not one type)."""
    kinds = spec.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else [k for k in kinds if k != "null"]
    return kinds[0] if len(kinds) == 1 else "string"


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"got {text!r}")


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"got {text!r}") from None


def _number(text: str) -> int | float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"got {text!r}")
    return int(value) if value.is_integer() and "." not in text else value


def _json_of(kind: type, label: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error.msg} at character {error.pos}") from None
        if not isinstance(value, kind):
            raise ValueError(f"JSON {type(value).__name__}, not {label}")
        return value

    return parse


PARSERS: dict[str, Callable[[str], Any]] = {
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "object": _json_of(dict, "an object"),
    "array": _json_of(list, "an array"),
}
EXPECTED = {
    "boolean": "a boolean (" + "/".join(TRUE_WORDS) + " or " + "/".join(FALSE_WORDS) + ")",
    "integer": "an integer such as 3",
    "number": "a number such as 2.5",
    "object": 'a JSON object such as {"key": "value"}',
    "array": 'a JSON array such as ["a", "b"]',
    "string": "text",
}


def config_file_problem(path: str) -> str | None:
    """Why a `--config` file cannot be used, in one line (the SDK's reader raises a traceback)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        return f"Config file {path} cannot be read: {reason or error}."
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return (
            f"Config file {path} is not JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}): write the settings as one JSON object."
        )
    except RecursionError:
        return f"Config file {path} is nested too deeply: write the settings as one JSON object."
    if not isinstance(value, dict):
        return f"Config file {path} holds a JSON {type(value).__name__}: write one JSON object."
    return None
