"""Models built on minigrad: a decoder-only GPT (``models.gpt``) and its character-level data
(``models.data``: a tokenizer, the bundled tiny Shakespeare corpus and a batch sampler)."""
