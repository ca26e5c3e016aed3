"""Generate the offline tokenizer folder the local Dynamo graph serves (REFERENCE.md §6).

A small byte-level BPE trained on a fixed, generated corpus, plus the Hugging Face side files
(config with a chat template, llama-style model config). No weights, nothing downloaded.
Deterministic: the same files come out on every run.

    .venv/bin/python tools/make_tokenizer.py [OUT_DIR]     # default: ftctl/data/tokenizer
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Training on one thread keeps merges (and so tokenizer.json) byte-identical between runs.
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["RAYON_NUM_THREADS"] = "1"

VOCAB_SIZE = 2048
MAX_LEN = 32768
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

WORDS = (
    "the of and to in is that it for was on are as with be at by this have from or one had not "
    "but what all were when we there can an your which their said if do will each about how up "
    "out them then she many some so these would other into has more her two like him see time "
    "could no make than first been its who now people my made over did down only way find use "
    "may water long little very after words called just where most know get through back much "
    "before go good new write our used me man too any day same right look think also around "
    "another came come work three word must because does part even place well such here take "
    "why things help put years different away again off went old number great tell men say "
    "small every found still between name should home big give air line set own under read "
    "last never us left end along while might next sound below saw something thought both few "
    "those always looked show large often together asked house world going want school "
    "important until form food keep children feet land side without boy once animals life "
    "enough took sometimes four head above kind began almost live page got earth need far hand "
    "high year mother light parts country father let night following picture being study second "
    "eyes soon times story boys since white days ever paper hard near sentence better best "
    "across during today others however sure means knew try told young miles sun ways thing "
    "whole hear example heard several change answer room sea against top turned learn point "
    "city play toward five using himself usually model server request token latency worker "
    "frontend decode prefill cluster failure recovery inference deployment"
).split()


def corpus() -> list[str]:
    """Deterministic training text: words, numbers, punctuation, digit runs, code-ish lines."""
    lines = []
    n = len(WORDS)
    for i in range(4000):
        # A fixed linear-congruential walk over the word list: varied but reproducible.
        picks = [WORDS[(i * 7919 + k * 104729) % n] for k in range(12)]
        if i % 3 == 0:
            picks[0] = picks[0].capitalize()
        lines.append(" ".join(picks) + (".", ",", "?", "!")[i % 4])
        lines.append(" ".join(str((i * 31 + k * 17) % 10) for k in range(20)))
        lines.append(f'{i} {i * 13 % 997} {{"id": {i}, "value": {i / 7:.3f}}}')
    return lines


def build(out: Path) -> None:
    """Train the tokenizer and write the model folder into ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"), pretty=False)
    ids = {t: tok.token_to_id(t) for t in SPECIAL}
    vocab = tok.get_vocab_size()

    def dump(name: str, data: dict) -> None:
        (out / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    dump(
        "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|pad|>",
            "model_max_length": MAX_LEN,
            "clean_up_tokenization_spaces": False,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    dump(
        "special_tokens_map.json",
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"},
    )
    dump(
        "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": MAX_LEN,
            "bos_token_id": ids["<|begin_of_text|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|pad|>"],
            "torch_dtype": "float16",
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
        },
    )
    dump(
        "generation_config.json",
        {"bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|im_end|>"]},
    )


def main(argv: list[str]) -> int:
    """Entry point: ``make_tokenizer.py [OUT_DIR]``."""
    default = Path(__file__).resolve().parent.parent / "ftctl" / "data" / "tokenizer"
    out = Path(argv[1]) if len(argv) > 1 else default
    build(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
