"""A small client for OpenAI-compatible chat-completions endpoints (stdlib only).

Speaks `POST {base_url}/chat/completions` as OpenAI, vLLM, SGLang, llama.cpp's server, Ollama and
most hosted providers do. The API key is read from an environment variable whose NAME is given
(default OPENAI_API_KEY), so it never appears on a command line; it is kept out of reprs, logs
and error messages. Requests that may succeed when repeated (HTTP 429 and 5xx, timeouts,
dropped connections) are retried with exponential backoff; `complete_many` runs requests on a
thread pool and yields each result as it arrives. A reply says whether the token limit cut it
off (`ChatReply.cut_off`), so that callers can tell "raise the limit" from a wrong reply.

Servers of reasoning models (DeepSeek's API, vLLM and SGLang with a reasoning parser) send the
chain of thought apart from `content`; `with_reasoning=True` puts it back in front as a
`<think>` block (see `REASONING_FIELDS`).
"""
from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from rlkd_lite.errors import RlkdError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
Messages = list[dict[str, str]]

# Statuses that say the request itself will never work (wrong key, wrong model or URL): every
# later request would fail the same way, so these stop a whole run instead of one item.
_FATAL_STATUSES = (401, 403, 404)
_ERROR_BODY_CHARS = 300
"""How much of an error response's body goes into the error message."""
REASONING_FIELDS = ("reasoning_content", "reasoning")
"""The message fields that hold a reasoning model's chain of thought, first found first:
`reasoning_content` (DeepSeek's API; vLLM and SGLang with a reasoning parser), `reasoning`
(newer vLLM, which may send both)."""
_THINK_TAGS = ("<think>", "</think>")


class ApiError(RlkdError):
    """A request that failed for good (after any retries).

    `fatal`: the endpoint rejects every request (authentication, unknown model or URL), so the
    caller should stop. Otherwise the failure concerns this request only.
    """

    def __init__(self, message: str, *, status: int | None = None, fatal: bool = False):
        super().__init__(message)
        self.status, self.fatal = status, fatal


@dataclass(frozen=True)
class ChatReply:
    """The assistant's reply to one request."""

    text: str
    cut_off: bool
    """The finish reason was "length": the token limit ended the reply, which is then likely
    unfinished (servers that send no finish reason count as not cut off)."""


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may not (internal)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class ChatClient:
    """An OpenAI-compatible chat-completions endpoint, one model on it."""

    base_url: str
    """The API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1."""
    model: str
    api_key_env: str = DEFAULT_API_KEY_ENV
    """Name of the environment variable holding the key; unset means no key is sent (local
    servers usually need none)."""
    timeout_s: float = 120.0
    """Per attempt: connecting and waiting for the whole reply."""
    max_retries: int = 4
    """Attempts after the first, for retryable failures only."""
    backoff_s: float = 1.0
    """Wait before the first retry; doubles with each retry (plus jitter), capped at 60 s."""
    concurrency: int = 8
    """Requests in flight at once in `complete_many`."""
    _api_key: str | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise RlkdError(f"API base URL must start with http:// or https://, got "
                            f"{self.base_url!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise RlkdError("concurrency must be >= 1, retries >= 0 and the timeout > 0")
        self._api_key = os.environ.get(self.api_key_env) or None

    @property
    def has_api_key(self) -> bool:
        """Whether a key was found in the environment variable (the key itself is not exposed)."""
        return self._api_key is not None

    def complete(self, messages: Messages, *, with_reasoning: bool = False, **params: Any
                 ) -> ChatReply:
        """The assistant's reply to `messages`; `params` (temperature, max_tokens, seed, ...)
        go into the request body. Raises ApiError when every attempt failed.

        `with_reasoning`: when the message has a non-blank reasoning field (`REASONING_FIELDS`)
        and its content has no think tags of its own, the reply's text is
        "<think>\n{reasoning}\n</think>\n{content}", the form reasoning models write inline
        (content that has tags already carries its reasoning, so it is kept as it is). A null
        content next to such a field counts as empty: the model was cut off while thinking.
        Otherwise, and always without `with_reasoning`, the text is the content alone.
        """
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode("utf-8")
        attempt = 0
        while True:
            try:
                return self._attempt(body, with_reasoning)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise ApiError(f"{exc} (gave up after {attempt + 1} attempts)") from None
                time.sleep(self._backoff(attempt, exc.retry_after))
                attempt += 1

    def complete_many(self, conversations: Sequence[Messages], *, with_reasoning: bool = False,
                      **params: Any) -> Iterator[tuple[int, ChatReply | ApiError]]:
        """Yield (index, reply or ApiError) for each conversation as its request finishes, with
        at most `concurrency` requests in flight; replies as `complete` makes them. A fatal
        ApiError is raised, not yielded; requests not yet started are then cancelled (as they
        are when the caller stops early).
        """
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="chat")
        pending: dict[Future, int] = {}
        queue = iter(enumerate(conversations))
        try:
            while True:
                # Submit lazily: a crash or Ctrl-C then loses only the requests in flight.
                for index, messages in queue:
                    pending[pool.submit(self.complete, messages,
                                        with_reasoning=with_reasoning, **params)] = index
                    if len(pending) >= self.concurrency:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        yield index, future.result()
                    except ApiError as exc:
                        if exc.fatal:
                            raise
                        yield index, exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _attempt(self, body: bytes, with_reasoning: bool) -> ChatReply:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except TimeoutError:
            raise _Retryable(f"no reply within {self.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(f"no reply within {self.timeout_s:g} s") from None
            raise _Retryable(f"cannot reach {self.base_url}: {exc.reason}") from None
        except (ConnectionError, http.client.HTTPException) as exc:  # dropped mid-reply
            raise _Retryable(f"connection to {self.base_url} failed: {exc!r}") from None
        return _chat_reply(raw, with_reasoning)

    def _http_error(self, exc: urllib.error.HTTPError) -> Exception:
        detail = _error_detail(exc)
        message = f"HTTP {exc.code} from {self.base_url}: {detail}"
        if exc.code == 429 or exc.code >= 500:
            return _Retryable(message, _retry_after(exc.headers.get("Retry-After")))
        if exc.code in _FATAL_STATUSES:
            hint = (f" (is ${self.api_key_env} set to a valid key?)" if exc.code in (401, 403)
                    else f" (check the base URL and the model name {self.model!r})")
            return ApiError(message + hint, status=exc.code, fatal=True)
        return ApiError(message, status=exc.code)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        # Jitter spreads the retries of concurrent requests that failed together.
        return min(self.backoff_s * 2 ** attempt * (1 + random.random() * 0.25), 60.0)


def _chat_reply(raw: bytes, with_reasoning: bool) -> ChatReply:
    """The assistant message in a chat-completions response body (see `complete` for
    `with_reasoning`)."""
    try:
        data = json.loads(raw.decode("utf-8"))
        choice = data["choices"][0]
        message, cut_off = choice["message"], choice.get("finish_reason") == "length"
        content = message["content"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(f"malformed response: not JSON ({_preview(raw)})") from None
    except (KeyError, IndexError, TypeError):
        raise ApiError(f"malformed response: no choices[0].message.content "
                       f"({_preview(raw)})") from None
    reasoning = _separate_reasoning(message) if with_reasoning else None
    if content is None and (reasoning is not None or cut_off):
        content = ""  # vLLM's reply when max_tokens ran out before the thinking ended
    if not isinstance(content, str):
        raise ApiError(f"malformed response: message content is {type(content).__name__}, "
                       f"not text")
    if reasoning is not None and not any(tag in content for tag in _THINK_TAGS):
        content = f"<think>\n{reasoning}\n</think>\n{content}"
    return ChatReply(content, cut_off)


def _separate_reasoning(message: dict[str, Any]) -> str | None:
    """The first non-blank text among the message's `REASONING_FIELDS`, trimmed; None without
    one (fields of other types are not reasoning text: providers differ, so they are ignored)."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The error message an API put in its body ({"error": {"message": ...}}), else the body."""
    try:
        raw = exc.read()
    except OSError:
        return exc.reason or "no details"
    try:
        message = json.loads(raw)["error"]["message"]
        if isinstance(message, str):
            return message[:_ERROR_BODY_CHARS]
    except (ValueError, KeyError, TypeError):
        pass
    return _preview(raw) or str(exc.reason)


def _preview(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text[:_ERROR_BODY_CHARS] + ("..." if len(text) > _ERROR_BODY_CHARS else "")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
