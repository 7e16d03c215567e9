"""Imports every command module so that each registers itself on the app."""
import importlib

for _name in ("score", "train", "gsrm", "teach", "eval", "report", "bench"):
    try:
        importlib.import_module(f"rlkd_lite.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command not written yet
        if exc.name != f"rlkd_lite.cli.{_name}":
            raise
