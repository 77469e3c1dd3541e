"""The Ollama ``Modelfile`` and the README beside an exported GGUF.

Ollama's TEMPLATE is a Go template, not Jinja: no library translates one into the other, so the ChatML
layout (SmolLM2's, selftune's bundled model's) is written here, with the default system prompt the Jinja
template inserts, read off the template by rendering it. A template of another layout gets no TEMPLATE line
(Ollama then guesses one from the GGUF's own template) and the README says so.
"""

from __future__ import annotations

from pathlib import Path

START, END = "<|im_start|>", "<|im_end|>"
PROBE = "\x00probe\x00"


def chatml_default_system(tokenizer) -> str | None:
    """The system prompt the template adds when a conversation has none ("" if none), or None when the
    template is not ChatML as selftune renders it."""
    template = tokenizer.chat_template or ""
    if START not in template or END not in template:
        return None
    text = tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], tokenize=False,
                                         add_generation_prompt=True)
    user = f"{START}user\n{PROBE}{END}\n{START}assistant\n"
    if not text.endswith(user):
        return None
    prefix = text[: -len(user)]
    if not prefix:
        return ""
    head, tail = f"{START}system\n", f"{END}\n"
    if prefix.startswith(head) and prefix.endswith(tail) and prefix.count(START) == 1:
        return prefix[len(head): -len(tail)]
    return None


def ollama_template(default_system: str) -> str:
    """ChatML over Ollama's message list; a conversation without a system message gets the default one."""
    fallback = (f'{{{{- if not (and .Messages (eq (index .Messages 0).Role "system")) }}}}'
                f"{START}system\n{default_system}{END}\n{{{{ end }}}}") if default_system else ""
    return (f"{fallback}{{{{- range .Messages }}}}{START}{{{{ .Role }}}}\n{{{{ .Content }}}}{END}\n"
            f"{{{{ end }}}}{START}assistant\n")


def write_modelfile(path: Path, model_file: str, adapter_file: str | None, tokenizer) -> None:
    lines = [f"FROM ./{model_file}"]
    if adapter_file:
        lines.append(f"ADAPTER ./{adapter_file}")
    default_system = chatml_default_system(tokenizer)
    if default_system is not None:
        lines.append(f'TEMPLATE """{ollama_template(default_system)}"""')
        stops = [END, START]
    else:
        lines.append("# no TEMPLATE: the chat template is not ChatML; Ollama picks one from the GGUF's own")
        stops = [tokenizer.eos_token]
    lines += [f'PARAMETER stop "{stop}"' for stop in dict.fromkeys(stops) if stop]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_readme(path: Path, name: str, model_file: str, adapter_file: str | None, type_: str) -> None:
    tag = "my-model"
    lora = f" --lora {adapter_file}" if adapter_file else ""
    pair = ("\nThe adapter applies to this base GGUF, which selftune wrote from the same fp32 weights it serves; "
            "another GGUF of the base model (another quantisation) works too but answers differently.\n"
            if adapter_file else "")
    path.write_text(f"""# {name} ({type_} GGUF, exported by selftune)

Files: `{model_file}`{f" (base model) and `{adapter_file}` (LoRA adapter)" if adapter_file else ""}, `Modelfile`.
The GGUF holds the chat template training used, its special tokens and end-of-turn token.
{pair}
llama.cpp:

    llama-cli -m {model_file}{lora} -cnv
    llama-server -m {model_file}{lora} --port 8080    # OpenAI-compatible /v1/chat/completions

Ollama:

    ollama create {tag} -f Modelfile
    ollama run {tag}

Python (llama-cpp-python):

    from llama_cpp import Llama
    llm = Llama("{model_file}"{f', lora_path="{adapter_file}"' if adapter_file else ""})
    llm.create_chat_completion(messages=[{{"role": "user", "content": "Hello"}}], temperature=0)
""", encoding="utf-8")
