"""What `teach` and `gsrm label` share: the endpoint flags, and the summary of a resumable job."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rlkd_lite.cli._common import console, err_console, user_errors
from rlkd_lite.data.resumable import REQUEST_FAILED
from rlkd_lite.errors import RlkdError

ApiBase = Annotated[Optional[str], typer.Option(
    help="Root URL of an OpenAI-compatible chat-completions API, e.g. https://api.openai.com/v1 "
         "or http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp, Ollama).")]
ApiModel = Annotated[Optional[str], typer.Option(help="Model name to request from --api-base.")]
ApiKeyEnv = Annotated[str, typer.Option(
    help="NAME of the environment variable holding the API key (the key itself never goes on "
         "the command line and is never printed). Unset: requests carry no key.")]
Concurrency = Annotated[int, typer.Option(min=1, help="API requests in flight at once.")]
Timeout = Annotated[float, typer.Option(min=0.001, help="Seconds to wait for one API reply.")]
Retries = Annotated[int, typer.Option(
    min=0, help="Retries of an API request after HTTP 429/5xx, a timeout or a dropped "
                "connection, with exponential backoff.")]
Backoff = Annotated[float, typer.Option(
    min=0.0, help="Seconds before the first retry; doubles with each further retry.")]
Rejects = Annotated[Optional[str], typer.Option(
    help="Where rejected items go, with their reason (default: OUTPUT with .rejects.jsonl).")]
RetryRejected = Annotated[bool, typer.Option(
    help="Redo the items an earlier run rejected instead of skipping them (e.g. teach with "
         "more --samples, or label a corrected file); failed requests are redone either way.")]


def make_client(api_base: str, api_model: Optional[str], api_key_env: str, concurrency: int,
                timeout: float, retries: int, backoff: float) -> Any:
    """A `ChatClient` for the endpoint flags; says (on stderr) whether a key was found."""
    from rlkd_lite.data.openai_client import ChatClient
    from rlkd_lite.errors import InputError

    if not api_model:
        raise InputError("--api-model is required with --api-base")
    client = ChatClient(api_base, api_model, api_key_env=api_key_env, timeout_s=timeout,
                        max_retries=retries, backoff_s=backoff, concurrency=concurrency)
    if not client.has_api_key:
        err_console.print(f"[yellow]note:[/] ${escape(api_key_env)} is not set: requests carry "
                          f"no API key", highlight=False)
    return client


def finish_job(title: str, summary: dict[str, Any]) -> None:
    """Print the counts of a resumable job (see `ResumableOutput.summary`). A job that accepted
    nothing is an error, so that a script stops there, when its requests failed or when the
    output holds nothing usable from an earlier run either."""
    print_summary(title, summary)
    if summary["accepted"]:
        return
    rejected = summary["rejected"]
    failed = rejected.get(REQUEST_FAILED, 0)
    with user_errors():
        if failed:
            raise RlkdError(f"nothing accepted: {failed} request(s) failed (details in "
                            f"{summary['rejects']}). Check --api-base, --api-model and the "
                            f"server, then run again: failed items are retried.")
        if not summary["earlier_accepted"]:
            why = []
            if rejected:
                counts = ", ".join(f"{n} {reason}" for reason, n in sorted(rejected.items()))
                why.append(f"rejected {counts} (details in {summary['rejects']})")
            if summary["skipped"]:  # nothing was accepted earlier: every skipped item was rejected
                why.append(f"skipped {summary['skipped']} rejected by an earlier run "
                           f"(--retry-rejected redoes them)")
            raise RlkdError(f"nothing accepted, and {summary['output']} holds nothing from an "
                            f"earlier run: {'; '.join(why)}")


def print_summary(title: str, summary: dict[str, Any]) -> None:
    """The counts of a resumable job (see `ResumableOutput.summary`)."""
    table = Table(title=title, show_header=False)
    table.add_row("accepted", str(summary["accepted"]))
    for reason, count in sorted(summary["rejected"].items()):
        table.add_row(f"rejected: {reason}", str(count))
    if summary["skipped"]:
        table.add_row("skipped (done by an earlier run)", str(summary["skipped"]))
    if summary["skipped_rejected"]:
        table.add_row("of them rejected (--retry-rejected redoes them)",
                      str(summary["skipped_rejected"]))
    if summary.get("torn_lines_removed"):
        table.add_row("torn lines removed (a crash; their items redone)",
                      str(summary["torn_lines_removed"]))
    table.add_row("output", escape(summary["output"]))
    if summary["rejected"]:
        table.add_row("rejects", escape(summary["rejects"]))
    console.print(table)
