"""A tiny offline tokenizer folder for the fake's Dynamo pods (REFERENCE §6); no download."""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def repo_tokenizer() -> Path | None:
    """The tokenizer shipped with ftctl (branch `local`), if present."""
    path = Path(__file__).resolve().parents[2] / "ftctl" / "data" / "tokenizer"
    return path if (path / "tokenizer.json").is_file() else None


def make_tokenizer(dest: Path) -> Path:
    """Write a small byte-level BPE tokenizer folder into ``dest`` and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    dest.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9"] * 50
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.save(str(dest / "tokenizer.json"))
    vocab = tok.get_vocab_size()
    files = {
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "model_max_length": 8192,
            "chat_template": CHAT_TEMPLATE,
        },
        "special_tokens_map.json": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
        "config.json": {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "num_hidden_layers": 2,
            "max_position_embeddings": 8192,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "torch_dtype": "float16",
        },
        "generation_config.json": {"bos_token_id": 0, "eos_token_id": 0},
    }
    for name, content in files.items():
        (dest / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    return dest
