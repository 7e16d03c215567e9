"""Imports every command module so that each registers itself on the app (in --help order)."""
from rlkd_lite.cli import score, train, gsrm, teach, eval, report, bench  # noqa: F401
