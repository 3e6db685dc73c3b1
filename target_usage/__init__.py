"""target-usage: a Singer target that delivers product-usage records to Skalin and Hull."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("target-usage")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
