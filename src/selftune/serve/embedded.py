"""The embedded engine: one base model in memory, LoRA adapters on demand, continuous batching.

A scheduler thread runs the batch step by step. Every step feeds the model, as one batch, one token
of each request that is decoding and a chunk of the prompt of each request that has just joined
(chunked prefill), so requests join and leave between decode steps and a long prompt never stalls
the others for long. Tokens of different adapters run in the same forward pass
(:mod:`selftune.serve.mixed_lora`); the keys and values live in a paged pool
(:mod:`selftune.serve.kv_pool`). When the pool is full, the newest request is set aside and
recomputed later, as vLLM does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from selftune.config import ServeWeights
from selftune.models.resolve import resolve_model
from selftune.serve.attention import Segment, StepPlan, serving_attention_enabled
from selftune.serve.constraints import Constraint
from selftune.serve.detokenize import TextStream
from selftune.serve.engine import Engine, Event, Finished, GenerationRequest, Handle, Token
from selftune.serve.kv_pool import PAGE, KVPool
from selftune.serve.mixed_lora import MixedLoRA
from selftune.serve.sampling import Sampler

log = logging.getLogger(__name__)
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
IDLE_SECONDS = 2.0  # no request for this long: the engine stops counting as a process that computes


@dataclass
class _Sequence:
    request: GenerationRequest
    emit: Callable[[Event], None]
    handle: Handle
    adapter: str  # PEFT adapter name, or BASE
    sampler: Sampler
    text: TextStream
    ids: list[int]  # prompt, then generated tokens
    prompt_len: int
    stop_tokens: set[int]
    limit: int  # most tokens (prompt + answer) it may hold: the model's context
    pages: list[int] = field(default_factory=list)
    past: int = 0  # tokens whose keys and values are in the pool
    hashes: list[bytes] = field(default_factory=list)  # prefix hashes of its full pages in the pool

    @property
    def generated(self) -> int:
        return len(self.ids) - self.prompt_len


class _LoadedBase:
    """A base model and the adapters loaded into it (PEFT wraps it once the first adapter arrives)."""

    def __init__(self, source: str, dtype: torch.dtype, kv_tokens: int, max_adapters: int, fast: bool = True,
                 packed: bool = True, weights: ServeWeights = ServeWeights.FULL):
        from transformers import AutoModelForCausalLM

        from selftune.serve import fast_decoder

        self.source = source
        self.folder = resolve_model(source)
        self.model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype, trust_remote_code=False).eval()
        self.model.requires_grad_(False)
        self.config = self.model.config
        self.dtype = dtype
        self.lm = self.model  # the transformers model, also once PEFT wraps it
        self.adapters: OrderedDict[str, str] = OrderedDict()  # PEFT name -> folder, least recently used first
        self.max_adapters = max_adapters
        self.pinned: set[str] = set()
        self.active: str | None = None  # the adapter PEFT currently applies when not mixing
        self.mixer = MixedLoRA()
        # the lean decode forward where it reproduces the architecture; transformers' modules otherwise
        self.fast = (fast_decoder.FastDecoder(self.model, packed, int8=weights == ServeWeights.INT8)
                     if fast and fast_decoder.supported(self.model) else None)
        if weights == ServeWeights.INT8 and self.fast is None:
            log.warning("int8 weights need the lean decoder (Llama-family models); %s serves in %s", source, dtype)
        head_dim = getattr(self.config, "head_dim", None) or self.config.hidden_size // self.config.num_attention_heads
        self.pool = KVPool(self.config.num_hidden_layers, self.config.num_key_value_heads, head_dim, kv_tokens,
                           dtype, self.model.device)

    def adapter(self, folder, in_use: set[str]) -> str:
        """Load an adapter (once) and return its PEFT name; evicts the least recently used idle one."""
        from peft import PeftModel

        name = "a" + hashlib.sha1(str(folder).encode()).hexdigest()[:16]
        if name in self.adapters:
            self.adapters.move_to_end(name)
            return name
        idle = [n for n in self.adapters if n not in in_use and n not in self.pinned]
        while len(self.adapters) >= self.max_adapters and idle:
            victim = idle.pop(0)
            self.model.delete_adapter(victim)
            del self.adapters[victim]
            self.active = None if self.active == victim else self.active
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name, is_trainable=False)
            self.active = name
        for module in self.model.modules():  # adapters compute in the base's dtype, as merged weights would
            for param in module.parameters(recurse=False):
                if param.dtype != self.dtype and param.is_floating_point():
                    param.data = param.data.to(self.dtype)
        self.adapters[name] = str(folder)
        self.mixer.attach(self.model)
        if self.fast is not None:
            self.fast.refresh(self.lm)
        log.info("loaded adapter %s (%d in memory)", folder, len(self.adapters))
        return name

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, hidden] -> [N, vocab] float32."""
        if self.fast is not None:
            return self.fast.logits(hidden).float()
        return self.lm.get_output_embeddings()(hidden).float()

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, plan: StepPlan, names: list[str]):
        """Hidden states [T, H] of one step; each token through its own adapter."""
        from peft import PeftModel

        if self.fast is not None and self.mixer.supports(set(self.adapters)):
            with self.mixer.owning(names):
                return self.fast.forward(input_ids, positions, plan, self.mixer)
        decoder = self.lm.get_decoder()
        kwargs = dict(input_ids=input_ids.unsqueeze(1), position_ids=positions.unsqueeze(1), step_plan=plan,
                      use_cache=False)
        with serving_attention_enabled(self.config):
            if not isinstance(self.model, PeftModel):
                return decoder(**kwargs).last_hidden_state[:, 0]
            if self.mixer.supports(set(self.adapters)):  # every loaded adapter is plain LoRA: the fast path
                with self.mixer.applied(names):
                    return decoder(**kwargs).last_hidden_state[:, 0]
            unique = set(names)  # PEFT's own paths, for DoRA and other variants
            if unique == {BASE}:
                with self.model.disable_adapter():
                    return decoder(**kwargs).last_hidden_state[:, 0]
            if len(unique) == 1:
                if self.active != names[0]:  # set_adapter walks every module: only when it changes
                    self.model.set_adapter(names[0])
                    self.active = names[0]
                return decoder(**kwargs).last_hidden_state[:, 0]
            with self.model.base_model._enable_peft_forward_hooks(adapter_names=names):
                return decoder(**kwargs).last_hidden_state[:, 0]


class EmbeddedEngine(Engine):
    name = "embedded"
    fast_forward = True  # the lean decoder (selftune.serve.fast_decoder) where it applies; False: transformers'
    packed_weights = True  # the lean decoder's weights prepacked for oneDNN (fast_decoder.prepack)

    def __init__(self, *, dtype: str = "auto", kv_tokens: int = 32768, step_tokens: int = 512,
                 max_running: int = 64, max_adapters: int = 8, threads: int | None = None,
                 weights: ServeWeights = ServeWeights.FULL):
        from selftune.hardware import autocast_dtype, training_device
        from selftune.threads import ComputeShare

        super().__init__(kv_tokens)
        self.device = training_device()
        self.dtype = autocast_dtype(self.device, dtype) or torch.float32
        self.step_tokens, self.max_running, self.max_adapters = step_tokens, max_running, max_adapters
        self.weights = ServeWeights(weights)
        # a fixed count when given; else a share of the cores, re-decided by the scheduler thread while it
        # works (selftune.threads): counted by a training job only while requests are running
        self._cpu_share = None if threads else ComputeShare("engine", active=False)
        if self._cpu_share:
            self._cpu_share.apply()
        else:
            torch.set_num_threads(threads)
        self.base: _LoadedBase | None = None
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="selftune-engine", daemon=True)
        self._thread.start()

    # ---- Engine interface ------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, emit: Callable[[Event], None]) -> Handle:
        handle = Handle()
        tokenizer = self.tokenizer(request.model)
        stop_tokens = self.stop_tokens(request.model)
        constraint = Constraint(request.params.grammar, tokenizer, stop_tokens) if request.params.grammar else None
        sequence = _Sequence(request=request, emit=emit, handle=handle, adapter=BASE,
                             sampler=Sampler(request.params, len(tokenizer), constraint),
                             text=TextStream(tokenizer, request.params.stop), ids=list(request.prompt_ids),
                             prompt_len=len(request.prompt_ids), stop_tokens=stop_tokens,
                             limit=self.context_length(request.model))
        with self._cond:
            self._waiting.append(sequence)
            self._cond.notify()
        return handle

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        if self._cpu_share:
            self._cpu_share.close()

    # ---- the scheduler -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self._running:
                    if not self._cond.wait(timeout=IDLE_SECONDS) and self._cpu_share:
                        self._cpu_share.set_active(False)  # idle a while: leave the cores to training
                if self._closed:
                    return
            if self._cpu_share:
                self._cpu_share.set_active(True)  # sets this thread's torch threads (OpenMP's are per thread)
            try:
                self._admit()
                if self._running:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - a failed step fails its requests, not the server
                log.exception("generation step failed")
                for sequence in self._running:
                    self._finish(sequence, "error", error=f"{type(exc).__name__}: {exc}")
                self._running.clear()

    def _admit(self) -> None:
        """Move waiting requests into the running batch while memory and the batch size allow (FIFO)."""
        while True:
            with self._cond:
                if not self._waiting:
                    return
                sequence = self._waiting[0]
                if sequence.handle.cancelled:
                    self._waiting.popleft()
                    continue
                base_source = sequence.request.model.base
                switch = self.base is None or self.base.source != base_source
                if switch and self._running:
                    return  # another base model is busy: switch once its requests are done
                if not switch and (len(self._running) >= self.max_running
                                   or not self.base.pool.can_reserve(len(sequence.ids) + 1)):
                    return
                if not switch:
                    self._waiting.popleft()
            if switch:  # outside the lock: loading takes seconds, and submit() must not wait for it
                self._load_base(base_source)
                continue
            if sequence.request.model.adapter is not None:
                in_use = {s.adapter for s in self._running}
                sequence.adapter = self.base.adapter(sequence.request.model.adapter, in_use)
            self._place(sequence)
            self._running.append(sequence)

    def _place(self, sequence: _Sequence) -> None:
        """Pages for a request: the cached pages of its longest known prefix, then fresh ones. At least
        its last token is computed, for the logits of the first answer token."""
        pool = self.base.pool
        hashes = KVPool.prefix_hashes(sequence.adapter, sequence.ids, [], len(sequence.ids) - 1)
        sequence.pages = pool.match(hashes)
        sequence.hashes = hashes[:len(sequence.pages)]
        sequence.past = len(sequence.pages) * PAGE
        sequence.pages += pool.reserve(len(sequence.ids) + 1 - sequence.past)

    def _load_base(self, source: str) -> None:
        if self.base is not None:
            log.info("unloading base model %s", self.base.source)
            self.base = None
        log.info("loading base model %s", source)
        self.base = _LoadedBase(source, self.dtype, self.kv_tokens, self.max_adapters, self.fast_forward,
                                self.packed_weights, self.weights)

    def _step(self) -> None:
        base = self.base
        for sequence in [s for s in self._running if s.handle.cancelled]:  # the client went away
            self._running.remove(sequence)
            base.pool.release(sequence.pages)
        if not self._running:
            return
        self._grow_pages()
        budget = self.step_tokens
        segments, ids, positions, names, emitting = [], [], [], [], []
        for sequence in self._running:
            todo = len(sequence.ids) - sequence.past
            length = 1 if todo == 1 else max(1, min(todo, budget))  # decoding tokens never wait for prompts
            budget -= length
            segments.append(Segment(sequence.pages, sequence.past, length))
            ids.extend(sequence.ids[sequence.past:sequence.past + length])
            positions.extend(range(sequence.past, sequence.past + length))
            names.extend([sequence.adapter] * length)
            emitting.append(sequence.past + length == len(sequence.ids))
            sequence.past += length
        plan = StepPlan.build(base.pool, segments, base.model.device)
        device = base.model.device
        with torch.inference_mode():
            hidden = base.forward(torch.tensor(ids, device=device), torch.tensor(positions, device=device), plan,
                                  names)  # [T, H]
            ends = torch.cumsum(torch.tensor([s.length for s in segments]), 0) - 1
            rows = ends[torch.tensor(emitting, dtype=torch.bool)]
            logits = base.logits(hidden[rows.to(device)]).cpu() if len(rows) else None
        for sequence in self._running:  # pages filled this step become reusable prefixes
            known = len(sequence.hashes)
            sequence.hashes = KVPool.prefix_hashes(sequence.adapter, sequence.ids, sequence.hashes, sequence.past)
            for i in range(known, len(sequence.hashes)):
                base.pool.remember(sequence.pages[i], sequence.hashes[i])
        row = 0
        for sequence, emits in zip(list(self._running), emitting, strict=True):
            if not emits:
                continue
            self._advance(sequence, logits[row])
            row += 1

    def _grow_pages(self) -> None:
        """Give every running request room for this step's tokens; when the pool is full, set the newest
        requests aside (their pages freed) to be recomputed once there is room again."""
        pool = self.base.pool
        for sequence in list(self._running):
            need = pool.pages_for(len(sequence.ids)) - len(sequence.pages)
            while need > 0 and pool.available < need and len(self._running) > 1:
                victim = self._running[-1]
                self._running.remove(victim)
                pool.release(victim.pages)
                victim.past, victim.hashes = 0, []
                with self._cond:
                    self._waiting.appendleft(victim)
                if victim is sequence:
                    break
            if sequence in self._running and need > 0:
                sequence.pages.extend(pool.reserve(need * PAGE))

    def _advance(self, sequence: _Sequence, logits: torch.Tensor) -> None:
        try:
            choice = sequence.sampler.choose(logits)
        except RuntimeError as exc:  # e.g. a grammar that allows no token: this request fails, not the batch
            self._finish(sequence, "error", error=str(exc))
            self._running.remove(sequence)
            return
        sequence.ids.append(choice.token)
        params = sequence.request.params
        end_of_text = choice.token in sequence.stop_tokens
        text = "" if end_of_text else sequence.text.add(choice.token)
        if not end_of_text:
            sequence.emit(Token(text, choice))
        if end_of_text or sequence.text.stopped:
            self._finish(sequence, "stop")
        elif sequence.generated >= params.max_tokens or len(sequence.ids) >= sequence.limit:
            self._finish(sequence, "length")
        else:
            return
        self._running.remove(sequence)

    def _finish(self, sequence: _Sequence, reason: str, error: str | None = None) -> None:
        if reason != "error":
            rest = sequence.text.finish()
            if rest:
                sequence.emit(Token(rest, None))
        if self.base is not None:
            self.base.pool.release(sequence.pages)
        # the end-of-turn token counts: the model generated it (as vLLM and the hosted API count)
        sequence.emit(Finished(reason, sequence.prompt_len, sequence.generated, sequence.text.text, error))
