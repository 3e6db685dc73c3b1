"""`python -m target_usage` runs the same CLI as `target-usage`."""

from target_usage.target import TargetUsage

TargetUsage.cli()
