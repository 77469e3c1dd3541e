"""Stage 4: serve base and fine-tuned models — one loaded base model, many LoRA adapters, batched.

:class:`~selftune.serve.engine.Engine` is the interface the API talks to;
:class:`~selftune.serve.embedded.EmbeddedEngine` implements it with transformers + PEFT.
"""
