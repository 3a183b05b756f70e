"""One local Lambda execution environment: a child process that runs one function's handler.

``kernel-access local`` starts these (``python -m kernel_access.local.worker``) with the function's
whole environment (template variables resolved to local names, credentials of its execution role,
``AWS_ENDPOINT_URL`` of the local AWS), as Lambda starts an execution environment. Like Lambda, one
environment serves one invocation at a time and is reused for the next; concurrent requests get more
environments. Module globals (the Powertools resolver's current event, cached clients) therefore stay
per environment, exactly as the handler code expects.

Protocol (one JSON document per line):

* stdin, first line: ``{"function": {...}}`` (what :class:`LocalFunction` needs to load the handler);
  the worker answers ``{"ready": true}`` or ``{"error": {...}}`` (an init error, as Lambda reports it);
* then per invocation ``{"event": {...}, "request_id": "...", "deadline": <epoch seconds>}`` →
  ``{"result": <return value>}`` or ``{"error": {"type": ..., "message": ...}}``.

The protocol uses a private copy of the original stdout; file descriptor 1 is pointed at stderr so
whatever the handler prints (Powertools' JSON logs, EMF metrics) lands in the emulator's log instead
of corrupting the protocol. SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group,
and the emulator stops its environments itself (EOF on stdin ends the loop).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, TextIO

from kernel_access.local.functions import LocalFunction


def _error(error: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(error).__name__, "message": str(error)}}


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, separators=(",", ":")) + "\n")
    channel.flush()


def _function(spec: dict[str, Any]) -> LocalFunction:
    return LocalFunction(
        logical_id=str(spec["logical_id"]),
        name=str(spec["name"]),
        arn=str(spec["arn"]),
        handler=str(spec["handler"]),
        role_arn=None,
        timeout=int(spec["timeout"]),
        memory=int(spec["memory"]),
        runtime=str(spec["runtime"]),
        raw_environment={},
        inline_code=spec.get("inline_code"),
    )


def serve(commands: TextIO, replies: TextIO) -> int:
    """Load the function named by the first command, then answer invocations until EOF."""
    first = commands.readline()
    if not first:
        return 0
    function = _function(json.loads(first)["function"])
    try:
        handler = function.load()
    except Exception as error:  # an init error: reported, then the environment is gone (as in Lambda)
        _send(replies, _error(error))
        return 1
    _send(replies, {"ready": True})
    for line in commands:
        request = json.loads(line)
        context = function.context()
        context.aws_request_id = str(request["request_id"])
        context.deadline = time.monotonic() + max(0.0, float(request["deadline"]) - time.time())
        try:
            result = handler(request["event"], context)
            reply = json.dumps({"result": result}, separators=(",", ":"))
        except Exception as error:  # the Lambda service reports any handler error the same way
            print(
                f"[{function.name}] {context.aws_request_id} handler raised {type(error).__name__}: {error}",
                file=sys.stderr,
                flush=True,
            )
            reply = json.dumps(_error(error), separators=(",", ":"))
        replies.write(reply + "\n")
        replies.flush()
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(sys.stdin, replies)


if __name__ == "__main__":
    sys.exit(main())
