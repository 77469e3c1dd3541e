"""How the OpenAPI document declares a server-sent event stream (chat completions and responses with
``stream: true``): one source for both routes.

Before OpenAPI 3.2, the ``schema`` of a ``text/event-stream`` body describes each *event*: an object
with its ``data`` line (here a JSON chunk, as text), and optionally ``event``, ``id`` and ``retry``.
Declaring the whole stream as a string made schemathesis (ST108) report every streamed answer.
"""

from __future__ import annotations

SSE_EVENT = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
    "required": ["data"],
}
EVENT_STREAM = {"text/event-stream": {"schema": SSE_EVENT}}
