"""Models built on minigrad, installed as ``minigrad.models``: a decoder-only GPT
(``minigrad.models.gpt``) and its character-level data (``minigrad.models.data``: a
tokenizer, the bundled tiny Shakespeare corpus and a batch sampler); the encoder-decoder
Transformer (``minigrad.models.seq2seq``), its toy tasks (``minigrad.models.tasks``) and
its training command (``minigrad.models.seq2seq_train``)."""
