"""Stage "weights out": a merged model folder, or GGUF files (merged or base + LoRA adapter) for llama.cpp and
Ollama, with a Modelfile beside them."""

