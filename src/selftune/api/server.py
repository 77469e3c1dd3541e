"""How ``selftune serve`` runs the app under uvicorn, so that SIGTERM stops it as cleanly as Ctrl-C.

uvicorn alone waits for every open response before its lifespan shutdown (which stops the training
jobs at a checkpoint), so one long streamed answer held the whole shutdown; and it ends the process by
raising SIGTERM again, an exit by signal. Here a signal first ends the running answers (an error event
and ``[DONE]`` for a stream), any other connection gets :data:`SHUTDOWN_GRACE_SECONDS`, and the
process exits 0 once the jobs are stopped.
"""

from __future__ import annotations

import signal
import sys

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

SHUTDOWN_GRACE_SECONDS = 10  # for open connections after SIGTERM; then their tasks are cancelled


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI):
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig, frame) -> None:
        runner = getattr(self.app.state, "batch_runner", None)  # first: its cut-short answers stay unrecorded
        if runner is not None:
            runner.stop()
        chat = getattr(self.app.state, "chat", None)  # set by the lifespan: absent before startup ends
        if chat is not None:
            chat.shut_down()
        super().handle_exit(sig, frame)


def run(app: FastAPI, host: str, port: int) -> None:
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                    timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS), app)
    # uvicorn raises the signal it stopped for again once it is done: SIGTERM's default would kill the
    # process after the clean shutdown. The shutdown was asked for and went well: exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C, raised again the same way: the shutdown is done
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the port was taken, the startup failed
