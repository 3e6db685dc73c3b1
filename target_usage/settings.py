"""Settings: the typed schema users see in `--about`, and the checks that span settings.

JSON Schema catches a wrong type or value; what it cannot say (a stream routed to Skalin
without `skalin_client_id`, a plain-http URL to a remote host) is checked here and
reported with the setting to write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from target_usage.catalogue import API_REQUIRED, SINK_APIS, SINKS
from target_usage.ledger import ledger_passwords
from target_usage.outputs import URL_USER_INFO

INVALID_POLICIES = ("fail", "skip", "dead_letter")
SKALIN_MAX_REQUESTS_PER_SECOND = 100

COMMON = th.PropertiesList(
    th.Property(
        "stream_sinks",
        th.ObjectType(additional_properties=th.StringType(allowed_values=list(SINKS))),
        default={},
        description=(
            "Stream name (after stream_maps) → sink: "
            f"{', '.join(SINKS[:-1])} or {SINKS[-1]}. Streams not listed go to the sink "
            "named like the stream or like its last segment after '-', '.' or '__'."
        ),
    ),
    th.Property(
        "unmapped_streams",
        th.StringType,
        default="fail",
        allowed_values=["fail", "skip"],
        description="A stream no rule routes: stop with an error naming it, or skip it with a "
        "warning.",
    ),
    th.Property(
        "invalid_records",
        th.StringType,
        default="fail",
        allowed_values=list(INVALID_POLICIES),
        description="A record that cannot become a valid API item (no identity, no event "
        "name...): stop the run, skip it with a warning, or write it to dead_letter_path.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        default="target-usage-rejected.jsonl",
        description="Where rejected records are appended, as Singer messages that can be "
        "fixed and piped back into the target.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Build every request exactly as it would be sent and write it to "
        "dry_run_path; send nothing and emit no STATE.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        default="target-usage-requests.jsonl",
        description="JSONL file of dry-run requests: method, url, headers (secrets redacted), "
        "body.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=8,
        description="Retries per request for 408, 429, 5xx (not 501/505) and network errors.",
    ),
    th.Property(
        "retry_after_cap",
        th.NumberType(minimum=0),
        default=300,
        description="Longest wait, in seconds, a server's Retry-After header can impose before "
        "a retry; a longer one is shortened to this.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=30,
        description="Seconds to wait for each HTTP answer.",
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0),
        default=60,
        description="Seconds between progress lines on stderr (records read, delivered per "
        "sink, rate, retries, time waiting on rate limits); 0 turns them off.",
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType(minimum=1),
        default=16,
        description="Requests in flight at once, per API.",
    ),
    th.Property(
        "ledger",
        th.StringType,
        default="target-usage-ledger.sqlite",
        description="Where delivered items are remembered, so a rerun sends only what changed: "
        "a file path or sqlite:///path (embedded SQLite), or a postgresql:// URL to share one "
        "ledger between processes and machines (pip install 'target-usage[postgres]'); an "
        "empty string turns it off. See docs/ledger.md.",
    ),
    th.Property(
        "full_resync",
        th.BooleanType,
        default=False,
        description="Send every item even when the ledger says it was delivered unchanged, and "
        "refresh the ledger: the way back when a destination lost data.",
    ),
    th.Property(
        "ledger_retention_days",
        th.IntegerType(minimum=1),
        default=90,
        description="Event keys (identities, features, track) not seen for this many days are "
        "pruned after a successful run; traits and alias keys stay.",
    ),
)

SKALIN = th.PropertiesList(
    th.Property(
        "skalin_client_id",
        th.StringType,
        description="Skalin ClientId (Settings > General); required as soon as a stream routes "
        "to identities or features.",
    ),
    th.Property(
        "skalin_url",
        th.StringType,
        default="https://collect.skalin.io",
        description="Base URL; requests go to {skalin_url}/hit/bulk?rec=1&client_id=...",
    ),
    th.Property(
        "skalin_requests_per_second",
        th.NumberType(exclusive_minimum=0, maximum=SKALIN_MAX_REQUESTS_PER_SECOND),
        default=SKALIN_MAX_REQUESTS_PER_SECOND,
        description="Client-side pacing of Skalin requests, shared by all streams (the API "
        "allows 100 per second per IP).",
    ),
)

HULL = th.PropertiesList(
    th.Property(
        "hull_organization",
        th.StringType,
        description="Hull organization host, e.g. acme.hullapp.io; sent as Hull-Organization. "
        "Required as soon as a stream routes to traits, track, alias or unalias.",
    ),
    th.Property(
        "hull_connector_id",
        th.StringType,
        description="Hull connector id: every token's `iss`, sent as Hull-App-Id. Required for "
        "Hull sinks.",
    ),
    th.Property(
        "hull_connector_secret",
        th.StringType,
        secret=True,
        description="Hull connector secret: the HS256 key of every entry's token, sent as the "
        "request's Hull-Access-Token. Required for Hull sinks.",
    ),
    th.Property(
        "hull_firehose_url",
        th.StringType,
        default="https://firehose.hullapp.io",
        description="Where firehose batches are POSTed.",
    ),
    th.Property(
        "hull_token_ttl",
        th.IntegerType(minimum=60),
        default=3600,
        description="Seconds between a token's iat/nbf and its exp; tokens are reused for half "
        "of it.",
    ),
    th.Property(
        "hull_create",
        th.BooleanType,
        default=True,
        description="io.hull.create claim: create the user or account when it is not found.",
    ),
    th.Property(
        "hull_active",
        th.BooleanType,
        default=False,
        description="io.hull.active claim: process the profile in real time (not for high volume).",
    ),
    th.Property(
        "hull_batch_size",
        th.IntegerType(minimum=1, maximum=1000),
        default=100,
        description="Entries per firehose request (requests also stay under 1 MB).",
    ),
    th.Property(
        "hull_send_nulls",
        th.BooleanType,
        default=False,
        description="traits: send null (which deletes the attribute in Hull) or leave null "
        "columns out.",
    ),
)


def _with_type_notes(schema: dict[str, Any]) -> dict[str, Any]:
    """Append type, allowed values and secrecy to each description.

    `--about --format=markdown` prints only name, default and description; this makes
    that table (which README embeds) complete.
    """
    for spec in schema["properties"].values():
        kinds = [k for k in spec.get("type", ["object"]) if k != "null"]
        notes = [f"Type: {'/'.join(kinds)}"]
        if "enum" in spec:
            notes.append("one of " + ", ".join(f"`{v}`" for v in spec["enum"] if v is not None))
        extra = spec.get("additionalProperties")
        if isinstance(extra, dict) and "enum" in extra:
            notes.append("values one of " + ", ".join(f"`{v}`" for v in extra["enum"]))
        if spec.get("secret"):
            notes.append("secret (never logged)")
        spec["description"] = f"{spec['description']} ({'; '.join(notes)}.)"
    return schema


CONFIG_SCHEMA: dict[str, Any] = _with_type_notes(
    th.PropertiesList(*COMMON, *SKALIN, *HULL).to_dict()
)

# Settings each sink needs, from the API it delivers to.
REQUIRED_BY_SINK = {sink: API_REQUIRED[api] for sink, api in SINK_APIS.items()}
URL_SETTINGS = ("skalin_url", "hull_firehose_url")
# Sent as HTTP header values, so they must encode as Latin-1.
HEADER_SETTINGS = ("hull_organization", "hull_connector_id", "hull_connector_secret")
SECRET_SETTINGS = tuple(
    name for name, spec in CONFIG_SCHEMA["properties"].items() if spec.get("secret")
)


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """The values of secret settings, whatever their type, and the ledger URL's password."""
    secrets = [str(config[n]) for n in SECRET_SETTINGS if config.get(n) not in (None, "")]
    return [*secrets, *ledger_passwords(str(config.get("ledger") or ""))]


def missing_for_sink(config: Mapping[str, Any], sink: str, stream: str) -> list[str]:
    """Problems that stop `stream` from being delivered to `sink`, one sentence each."""
    return [
        f"stream '{stream}' routes to '{sink}', which needs '{setting}': add it to the config "
        f"(or TARGET_USAGE_{setting.upper()})"
        for setting in REQUIRED_BY_SINK.get(sink, ())
        if not config.get(setting)
    ]


def check(config: Mapping[str, Any]) -> None:
    """Cross-setting checks run at start-up; raises one error listing every problem."""
    problems = [problem for name in URL_SETTINGS for problem in _url_problems(name, config)]
    problems += [problem for name in HEADER_SETTINGS for problem in _header_problems(name, config)]
    for stream, sink in (config.get("stream_sinks") or {}).items():
        problems += missing_for_sink(config, sink, stream)
    if problems:
        raise ConfigValidationError("Config validation failed", errors=problems)


def _url_problems(name: str, config: Mapping[str, Any]) -> list[str]:
    url = config.get(name)
    if not url:
        return []
    parts = urlsplit(url)
    shown = URL_USER_INFO.sub("***@", url)
    if "@" in parts.netloc:
        # Both APIs authenticate with headers; user-info would be sent as Basic auth.
        return [
            f"'{name}' is {shown!r}: remove the user-info (user:password@) from the URL; "
            "credentials go in their own settings"
        ]
    if parts.scheme == "https" and parts.hostname:
        return []
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return []
    return [
        f"'{name}' is {shown!r}: use an https:// URL (plain http:// is allowed only for "
        "loopback hosts such as 127.0.0.1 or localhost)"
    ]


def _header_problems(name: str, config: Mapping[str, Any]) -> list[str]:
    """A header value that `requests` would refuse only when sending, minutes of retries
    later (InvalidHeader), told at start-up without quoting the value."""
    value = config.get(name)
    if value in (None, ""):
        return []
    text = str(value)
    if text != text.strip() or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return [
            f"'{name}' has surrounding whitespace or control characters (a trailing newline "
            "from $(cat file)?): remove them"
        ]
    if not _latin1(text):
        return [
            f"'{name}' holds characters an HTTP header cannot carry (only Latin-1 text): "
            "check it was copied whole"
        ]
    return []


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
