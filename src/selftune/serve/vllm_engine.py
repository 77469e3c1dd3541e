"""The vLLM engine: the same base model and LoRA adapters, served by vLLM on a GPU.

Chosen when vLLM is installed and a CUDA GPU is present (``SELFTUNE_SERVE_ENGINE=auto``). The API
renders prompts with the model's own chat template (the one it was trained with) and hands vLLM
token ids, so both engines see the same prompt; vLLM does the batching, paged KV cache, multi-LoRA
(punica kernels), stop strings and, through its llguidance backend, the same grammars the embedded
engine enforces. vLLM's asyncio engine runs on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections.abc import Callable

from selftune.serve.engine import Choice, Engine, Event, Finished, GenerationRequest, Handle, Token

log = logging.getLogger(__name__)


def vllm_usable() -> bool:
    """vLLM importable and a CUDA GPU present (vLLM's CPU backend is not what this engine is for)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, *, dtype: str = "auto", kv_tokens: int = 32768, max_adapters: int = 8,
                 max_lora_rank: int = 64, gpu_memory_utilization: float = 0.85):
        super().__init__(kv_tokens)
        self.dtype = {"auto": "auto", "bf16": "bfloat16", "fp32": "float32"}[dtype]
        self.max_adapters, self.max_lora_rank = max_adapters, max_lora_rank
        self.gpu_memory_utilization = gpu_memory_utilization
        self._engine = None
        self._base: str | None = None
        self._lora_ids: dict[str, int] = {}
        self._next_lora_id = itertools.count(1)
        self._engine_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="selftune-vllm", daemon=True)
        self._thread.start()

    def _engine_for(self, base: str):
        """vLLM loads one base model per engine: the first request's; another base is an error."""
        with self._engine_lock:
            if self._engine is None:
                from vllm.engine.arg_utils import AsyncEngineArgs
                from vllm.v1.engine.async_llm import AsyncLLM

                from selftune.models.resolve import resolve_model

                args = AsyncEngineArgs(model=str(resolve_model(base)), dtype=self.dtype, enable_lora=True,
                                       max_loras=self.max_adapters, max_lora_rank=self.max_lora_rank,
                                       max_model_len=None, enable_prefix_caching=True,
                                       gpu_memory_utilization=self.gpu_memory_utilization,
                                       structured_outputs_config={"backend": "guidance"})
                self._engine = AsyncLLM.from_engine_args(args)
                self._base = base
            elif base != self._base:
                raise RuntimeError(f"this vLLM engine serves the base model {self._base!r}; {base!r} needs "
                                   "another selftune server")
            return self._engine

    def _lora(self, model):
        if model.adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        path = str(model.adapter)
        if path not in self._lora_ids:  # vLLM identifies adapters by a stable integer
            self._lora_ids[path] = next(self._next_lora_id)
        return LoRARequest(lora_name=path, lora_int_id=self._lora_ids[path], lora_path=path)

    def _sampling(self, request: GenerationRequest):
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        p = request.params
        return SamplingParams(
            max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed, stop=p.stop or None,
            stop_token_ids=sorted(self.stop_tokens(request.model)), presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty, logprobs=(p.top_logprobs if p.logprobs else None),
            structured_outputs=StructuredOutputsParams(grammar=p.grammar) if p.grammar else None,
            output_kind=RequestOutputKind.DELTA, skip_special_tokens=True)

    def submit(self, request: GenerationRequest, emit: Callable[[Event], None]) -> Handle:
        handle = Handle()
        asyncio.run_coroutine_threadsafe(self._generate(request, emit, handle), self._loop)
        return handle

    async def _generate(self, request: GenerationRequest, emit: Callable[[Event], None], handle: Handle) -> None:
        from vllm import TokensPrompt

        request_id = uuid.uuid4().hex
        text, generated = "", 0
        stops = self.stop_tokens(request.model)
        try:
            engine = await asyncio.to_thread(self._engine_for, request.model.base)  # loading takes a while
            stream = engine.generate(TokensPrompt(prompt_token_ids=request.prompt_ids), self._sampling(request),
                                     request_id, lora_request=self._lora(request.model))
            async for output in stream:
                if handle.cancelled:  # the client went away: free vLLM's slot
                    await engine.abort(request_id)
                    return
                completion = output.outputs[0]
                ids = list(completion.token_ids)
                for k, token in enumerate(ids):
                    last = k == len(ids) - 1
                    if last and output.finished and token in stops:
                        continue  # the end-of-turn token counts but shows nothing, as in the embedded engine
                    emit(Token(completion.text if last else "",
                               _choice(token, completion.logprobs, k, request.params.top_logprobs)))
                text += completion.text
                generated += len(ids)
                if output.finished:
                    reason = "length" if completion.finish_reason == "length" else "stop"
                    emit(Finished(reason, len(request.prompt_ids), generated, text))
                    return
        except Exception as exc:  # noqa: BLE001 - a failed request fails alone, with its reason
            log.exception("vLLM generation failed")
            emit(Finished("error", len(request.prompt_ids), generated, text, f"{type(exc).__name__}: {exc}"))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def _choice(token: int, logprobs, k: int, top_n: int) -> Choice:
    """vLLM's per-token logprobs ({token id: Logprob(logprob, rank)}: the top n and the chosen token)
    as the engine interface's Choice."""
    if not logprobs:
        return Choice(token)
    entries = logprobs[k]
    top = sorted(((t, e.logprob) for t, e in entries.items() if e.rank is not None and e.rank <= top_n),
                 key=lambda item: -item[1])
    chosen = entries.get(token)
    return Choice(token, chosen.logprob if chosen else None, top)
