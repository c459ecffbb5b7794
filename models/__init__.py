"""Models built on minigrad, installed as ``minigrad.models``: a decoder-only GPT
(``minigrad.models.gpt``) and its character-level data (``minigrad.models.data``: a
tokenizer, the bundled tiny Shakespeare corpus and a batch sampler)."""
