"""Route of ``/v1/chat/completions``: JSON for a whole answer, server-sent events when streaming."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from selftune.api.auth import Org
from selftune.api.chat.protocol import ChatCompletion, ChatCompletionRequest
from selftune.api.chat.service import ChatService

router = APIRouter(prefix="/v1/chat", tags=["chat"])


def chat(request: Request) -> ChatService:
    return request.app.state.chat


Chat = Annotated[ChatService, Depends(chat)]


@router.post("/completions", response_model=ChatCompletion)
async def create_chat_completion(body: ChatCompletionRequest, org: Org, service: Chat):
    if body.stream:
        events = await service.stream(org, body)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await service.complete(org, body)
