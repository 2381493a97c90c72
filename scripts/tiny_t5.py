"""Generate a tiny, random T5-shaped model and tokenizer offline (no model hub is reachable here).

  python scripts/tiny_t5.py DEST

The tokenizer is a Unigram vocabulary trained with `tokenizers` on the sentences below; the model is
a T5ForConditionalGeneration with a few thousand random weights (seed 0, so the same on every run;
scaled up so that what it generates depends on the prompt, e.g. on the language asked for).
It is NOT a translation model: it exercises the real loading and generation code path of the text
app (AutoTokenizer, AutoModelForSeq2SeqLM, generate) and answers with words from its vocabulary.
"""
from __future__ import annotations

import sys
from pathlib import Path

SENTENCES = [
    "summarize: the cat is small and it sleeps all day long in the warm house.",
    "translate English to French: the house is small and the garden is green.",
    "translate English to German: the cat sleeps in the house.",
    "translate English to Romanian: the garden is green and small.",
    "le chat est petit et la maison est verte.", "die Katze ist klein und das Haus ist alt.",
    "pisica este mica si casa este verde.", "Ray Serve deploys models, fruit stands and calculators.",
]


def make_tiny_t5(dest: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(SENTENCES * 10, trainers.UnigramTrainer(
        vocab_size=160, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    fast = T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(fast), d_model=32, d_ff=64, d_kv=8, num_layers=2, num_decoder_layers=2,
                      num_heads=2, decoder_start_token_id=fast.pad_token_id, pad_token_id=fast.pad_token_id,
                      eos_token_id=fast.eos_token_id,
                      initializer_factor=5.0)  # larger random weights: the output depends on the prompt
    dest.mkdir(parents=True, exist_ok=True)
    T5ForConditionalGeneration(config).save_pretrained(dest)
    fast.save_pretrained(dest)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/tiny_t5.py DEST")
    print(make_tiny_t5(Path(sys.argv[1])))
