"""rlkd-lite: RLKD on one GPU."""
__version__ = "0.1.0"
