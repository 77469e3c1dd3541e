"""The tokenizer as llama.cpp must see it to cut text into the very tokens selftune trained on.

The ``gguf`` package reads merges, special token ids and the chat template (``gguf.SpecialVocab``); the token
list and llama.cpp's pre-tokenizer name come from llama.cpp's converter, which is not packaged, so they are
written here for the one tokenizer shape selftune's base models use (byte-level BPE). llama.cpp names its
pre-tokenizers by the regular expression it hard-codes for each; the name written must cut text exactly as
the HF tokenizer does, or the model reads other tokens than it was trained on. Any other shape is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf

from selftune.errors import SelftuneError

# tokenizer.json's pre_tokenizer and normalizer -> llama.cpp's pre-tokenizer with the same regex.
# "gpt-2": HF ByteLevel(use_regex=True) splits with GPT-2's pattern, which llama.cpp's "gpt-2" uses verbatim;
# it is what transformers writes for SmolLM2 when it converts the bundled GGUF (so digits are *not* split
# one by one as the original SmolLM2 tokenizer does; llama.cpp's "smollm" would split them, and drift).
PRE_TOKENIZERS = {
    json.dumps({"normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                                      "use_regex": True}}, sort_keys=True): "gpt-2",
}
SUPPORTED = "byte-level BPE tokenizers with GPT-2's pre-tokenizer (SmolLM2 as selftune converts it)"


def pre_tokenizer(tokenizer_json: dict) -> str:
    pre = dict(tokenizer_json.get("pre_tokenizer") or {})
    pre.pop("trim_offsets", None)  # offsets only: no effect on the tokens
    key = json.dumps({"normalizer": tokenizer_json.get("normalizer"), "pre_tokenizer": pre}, sort_keys=True)
    name = PRE_TOKENIZERS.get(key)
    if name is None:
        raise SelftuneError(f"GGUF export supports {SUPPORTED}; this tokenizer's normalizer/pre-tokenizer "
                            f"({key}) has no llama.cpp pre-tokenizer known to cut text the same way")
    return name


def add_tokenizer(writer, tokenizer, folder: Path, vocab_size: int) -> int:
    """Write the tokenizer of ``folder``; return its end-of-turn token id (what ends an assistant's turn)."""
    tokenizer_json = _tokenizer_json(folder)
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise SelftuneError(f"GGUF export supports {SUPPORTED}; {folder / 'tokenizer.json'} is a "
                            f"{model.get('type')} model{' with byte fallback' if model.get('byte_fallback') else ''}")
    pre = pre_tokenizer(tokenizer_json)
    tokens, types = token_list(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)

    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise SelftuneError(f"{folder / 'tokenizer.json'} has no BPE merges")
    # the template training rendered with, and the special tokens the HF tokenizer really adds (not what a
    # config file may claim): llama.cpp must add exactly those, or every prompt is shifted by a token
    special.chat_template = tokenizer.chat_template
    probe = tokenizer("a").input_ids
    special.add_special_token = {"bos": probe[:1] == [tokenizer.bos_token_id],
                                 "eos": probe[-1:] == [tokenizer.eos_token_id]}
    special.add_to_gguf(writer, quiet=True)
    if tokenizer.eos_token_id is None:
        raise SelftuneError(f"the tokenizer in {folder} has no end-of-sequence token, so generation would never stop")
    # selftune's chat template ends an assistant turn with the EOS token (models/chat_template.py)
    writer.add_eot_token_id(tokenizer.eos_token_id)
    return tokenizer.eos_token_id


def token_list(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every id's token text and llama.cpp type: added special tokens are CONTROL (parsed from text only when
    asked, as HF does for special tokens), other added ones USER_DEFINED, ids beyond the tokenizer UNUSED."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    if len(by_id) > vocab_size:
        raise SelftuneError(f"the tokenizer has {len(by_id)} tokens but the model only {vocab_size} embeddings")
    return tokens, types


def _tokenizer_json(folder: Path) -> dict:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise SelftuneError(f"GGUF export needs a fast tokenizer file: {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))
