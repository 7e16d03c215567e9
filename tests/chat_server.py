"""A real HTTP server on loopback that speaks OpenAI's chat-completions protocol, for tests.

The test gives a `respond(request, attempt)` function: `request` is the parsed JSON body,
`attempt` counts (from 1) the requests seen so far with the same last user message, so that a
test can fail an item once and then answer it. It returns a `Reply`.
A `Reply` can also carry the fields that reasoning models' servers put beside `content`
(`reasoning_content` from DeepSeek's API, vLLM and SGLang; `reasoning` from newer vLLM).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server sends: `content` as a chat completion, or `status` with `body`."""

    content: str | None = None
    status: int = 200
    body: bytes | None = None
    """Sent as is instead of a completion (a malformed response, an error body)."""
    delay_s: float = 0.0
    """Seconds to wait before answering (longer than the client's timeout: a timeout)."""
    message_fields: dict[str, Any] = field(default_factory=dict)
    """More fields of the assistant message, e.g. {"reasoning_content": "..."}; a "content"
    here replaces `content` (None included: a reasoning model cut off while thinking)."""
    finish_reason: str = "stop"
    """Why the reply ended: "length" when max_tokens cut it off."""


def completion_body(content: str | None, model: str = "test-model", finish_reason: str = "stop",
                    **message_fields: Any) -> bytes:
    message = {"role": "assistant", "content": content, **message_fields}
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


def last_user_message(request: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")


class ChatServer:
    """`with ChatServer(respond) as server:` serves on `server.base_url` until the block ends.

    `requests` records (path, authorization header, body) of every request received.
    """

    def __init__(self, respond: Callable[[dict[str, Any], int], Reply]):
        self.respond = respond
        self.requests: list[tuple[str, str | None, dict[str, Any]]] = []
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append((self.path, self.headers.get("Authorization"), body))
                    key = last_user_message(body)
                    server.attempts[key] += 1
                    attempt = server.attempts[key]
                if self.path != "/v1/chat/completions":
                    reply = Reply(status=404, body=b'{"error": {"message": "no such route"}}')
                else:
                    reply = server.respond(body, attempt)
                time.sleep(reply.delay_s)
                message = {"content": reply.content or "", **reply.message_fields}
                payload = reply.body if reply.body is not None else completion_body(
                    model=body.get("model", ""), finish_reason=reply.finish_reason, **message)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        return Handler
