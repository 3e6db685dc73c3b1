"""The sink catalogue: which sinks exist, which API each delivers to, what each API needs.

Declared once; the settings' allowed values, the required-settings check, the sink
classes and `TargetUsage.api_for` all derive from it, so adding a sink is one line here.
"""

from __future__ import annotations

SKALIN = "Skalin"
HULL = "Hull"

# Sink name -> the API its items go to, in the order users see them.
SINK_APIS: dict[str, str] = {
    "identities": SKALIN,
    "features": SKALIN,
    "traits": HULL,
    "track": HULL,
    "alias": HULL,
    "unalias": HULL,
}
SINKS = tuple(SINK_APIS)

# Settings an API cannot work without, checked as soon as a stream routes to one of its sinks.
API_REQUIRED: dict[str, tuple[str, ...]] = {
    SKALIN: ("skalin_client_id",),
    HULL: ("hull_organization", "hull_connector_id", "hull_connector_secret"),
}


def sinks_of(api: str) -> tuple[str, ...]:
    """The sinks whose items go to `api`."""
    return tuple(sink for sink, owner in SINK_APIS.items() if owner == api)
