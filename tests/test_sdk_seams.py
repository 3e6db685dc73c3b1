"""The private singer-sdk methods the target overrides still have the signatures recorded
in target_usage/sdk_seams.py; an SDK upgrade that changes one fails here, by name."""

from __future__ import annotations

import inspect

import pytest

from target_usage.sdk_seams import SEAMS, Seam, SinkSeams, TargetSeams, UsageReader


@pytest.mark.parametrize("seam", SEAMS, ids=lambda seam: f"{seam.sdk_class.__name__}.{seam.name}")
def test_each_sdk_seam_keeps_its_pinned_signature(seam: Seam) -> None:
    found = str(inspect.signature(_function(seam.sdk_class, seam.name)))
    assert found == seam.signature, (
        f"singer-sdk changed {seam.sdk_class.__name__}.{seam.name}: it was {seam.signature}, "
        f"it is now {found}. The target overrides it ({seam.why}); review the override in "
        "target_usage/sdk_seams.py against the new SDK, then record the new signature."
    )


@pytest.mark.parametrize("seam", SEAMS, ids=lambda seam: f"{seam.sdk_class.__name__}.{seam.name}")
def test_each_sdk_seam_is_overridden_in_the_seams_module(seam: Seam) -> None:
    ours = next(
        cls for cls in (TargetSeams, SinkSeams, UsageReader) if issubclass(cls, seam.sdk_class)
    )
    assert seam.name in vars(ours), f"{ours.__name__} no longer overrides {seam.name}"


def _function(cls: type, name: str) -> object:
    """The function behind an attribute, whether a method, a classmethod or a classproperty."""
    attribute = inspect.getattr_static(cls, name)
    return getattr(attribute, "fget", None) or getattr(cls, name)
