"""`python -m rlkd_lite` is `rlkd-lite` (for machines where the console script is not on PATH)."""
from rlkd_lite.cli import app

app()
