"""Tests for minigrad.models.data: the character tokenizer, corpus loading and batch sampling."""

import json
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from minigrad.models.data import BUNDLED, CharDataset, CharTokenizer, load_text

# Facts about Karpathy's tiny Shakespeare and nanoGPT's shakespeare_char split of it.
SHAKESPEARE_CHARS = 1_115_394
SHAKESPEARE_VOCAB = "\n !$&',-.3:;?" + string.ascii_uppercase + string.ascii_lowercase
SHAKESPEARE_TRAIN = 1_003_854
SHAKESPEARE_VAL = 111_540


@pytest.fixture(scope="module")
def shakespeare():
    return load_text("shakespeare")


@pytest.fixture(scope="module")
def shakespeare_data(shakespeare):
    return CharDataset(shakespeare)


# A text whose characters are all distinct, so the first token of a window reveals the
# offset it was cut from: position i holds token id i.
DISTINCT = "".join(chr(c) for c in range(0x21, 0x21 + 90))


# --- the bundled corpus ---------------------------------------------------------------------


def test_bundled_corpus_length_and_vocab(shakespeare):
    assert load_text() == shakespeare  # the default corpus is Shakespeare
    assert len(shakespeare) == SHAKESPEARE_CHARS
    assert shakespeare.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == 65
    assert "".join(tok.to_list()) == SHAKESPEARE_VOCAB


def test_bundled_resource_is_the_same_bytes_load_text_returns(shakespeare):
    # No newline translation or other processing between the file and the text.
    assert BUNDLED["shakespeare"].read_bytes() == shakespeare.encode("utf-8")


def test_shakespeare_split_sizes_match_nanogpt(shakespeare_data):
    d = shakespeare_data
    assert len(d.data) == SHAKESPEARE_CHARS
    assert len(d.train_data) == SHAKESPEARE_TRAIN
    assert len(d.val_data) == SHAKESPEARE_VAL
    assert d.vocab_size == 65
    # The split is contiguous: train is the head of the text and val is its tail.
    np.testing.assert_array_equal(np.concatenate([d.train_data, d.val_data]), d.data)
    text = load_text()
    assert d.tokenizer.decode(d.val_data[:50]) == text[SHAKESPEARE_TRAIN : SHAKESPEARE_TRAIN + 50]


# --- tokenizer ------------------------------------------------------------------------------


def test_vocabulary_is_sorted_unique_chars_and_ids_are_positions():
    tok = CharTokenizer.from_text("hello world")
    assert tok.to_list() == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == len(tok) == 8
    ids = tok.encode("hello")
    assert ids.dtype == np.int64 and ids.shape == (5,)
    np.testing.assert_array_equal(ids, [3, 2, 4, 4, 5])
    assert tok.decode(ids) == "hello"
    assert tok.decode([]) == "" and tok.encode("").shape == (0,)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(SHAKESPEARE_VOCAB), max_size=300))
def test_encode_decode_round_trip_on_vocabulary_strings(text):
    tok = CharTokenizer(SHAKESPEARE_VOCAB)
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    assert tok.decode(ids) == text
    assert tok.decode(ids.tolist()) == text


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_from_text_round_trips_any_unicode(text):
    # Including characters outside the BMP and combining marks: one id per code point.
    tok = CharTokenizer.from_text(text)
    assert tok.to_list() == sorted(set(text))
    assert tok.decode(tok.encode(text)) == text


def test_out_of_vocabulary_error_names_characters_and_positions():
    tok = CharTokenizer("abc ")
    with pytest.raises(ValueError) as info:
        tok.encode("ab\tcé a")
    msg = str(info.value)
    assert "not in the vocabulary" in msg
    assert "'\\t' at position 2" in msg
    assert "'é' at position 4" in msg


def test_out_of_vocabulary_error_shows_only_the_first_few():
    tok = CharTokenizer("a")
    with pytest.raises(ValueError) as info:
        tok.encode("a" + "xyz" * 100)
    msg = str(info.value)
    assert "'x' at position 1" in msg and "'y' at position 2" in msg
    assert "(300 in all)" in msg
    assert "position 299" not in msg  # a long text does not produce a huge message
    assert len(msg) < 300


def test_to_list_from_list_round_trip_through_json():
    tok = CharTokenizer.from_text("To be, or not to be:\nthat is the question. ¿Qué? 😀")
    saved = json.loads(json.dumps({"vocab": tok.to_list()}))["vocab"]
    restored = CharTokenizer.from_list(saved)
    assert restored == tok
    assert restored.to_list() == tok.to_list()
    text = "not the question? 😀"
    np.testing.assert_array_equal(restored.encode(text), tok.encode(text))


def test_from_list_keeps_the_given_order():
    # A checkpoint's vocabulary is restored as saved, even if it is not sorted.
    tok = CharTokenizer.from_list(["z", "a", "m"])
    np.testing.assert_array_equal(tok.encode("amz"), [1, 2, 0])
    assert tok.decode([0, 1, 2]) == "zam"


@pytest.mark.parametrize(
    "chars, match",
    [
        ([], "empty"),
        (["a", "bc"], "single characters.*'bc'"),
        (["a", 1], "single characters.*1"),
        (["a", "b", "a"], "duplicate.*'a'"),
    ],
)
def test_bad_vocabularies_are_rejected(chars, match):
    with pytest.raises(ValueError, match=match):
        CharTokenizer.from_list(chars)


def test_from_list_rejects_a_plain_string():
    with pytest.raises(TypeError, match="list of characters"):
        CharTokenizer.from_list("abc")


def test_decode_rejects_ids_outside_the_vocabulary_and_non_integers():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 3\): 3 at position 1"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="-1 at position 0"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        tok.decode(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))


# --- loading files ----------------------------------------------------------------------------


def test_load_text_reads_a_utf8_file_exactly(tmp_path):
    path = tmp_path / "corpus.txt"
    content = "héllo\r\nwörld\n"
    path.write_bytes(content.encode("utf-8"))
    assert load_text(path) == content  # no newline translation
    assert load_text(str(path)) == content


def test_load_text_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as info:
        load_text(path)
    assert str(path) in str(info.value)
    assert "'shakespeare'" in str(info.value)  # a misspelt name hints at the real names


def test_load_text_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError) as info:
        load_text(tmp_path)
    assert str(tmp_path) in str(info.value) and "directory" in str(info.value)


def test_load_text_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        load_text(path)
    assert str(path) in str(info.value) and "empty" in str(info.value)


def test_load_text_bad_utf8_reports_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))  # 'é' is the lone byte 0xe9 at offset 3
    with pytest.raises(ValueError) as info:
        load_text(path)
    msg = str(info.value)
    assert str(path) in msg and "not valid UTF-8" in msg
    assert "byte offset 3" in msg and "e9" in msg
    assert "\n" not in msg  # one line


def test_load_text_rejects_non_path_arguments():
    with pytest.raises(TypeError, match="corpus name or a path"):
        load_text(42)


# --- datasets and batches -------------------------------------------------------------------


def test_split_sizes_follow_val_fraction():
    text = "abcdefghij" * 10  # 100 tokens
    d = CharDataset(text)
    assert (len(d.train_data), len(d.val_data)) == (90, 10)
    d = CharDataset(text, val_fraction=0.25)
    assert (len(d.train_data), len(d.val_data)) == (75, 25)
    d = CharDataset(text, val_fraction=0.0)
    assert (len(d.train_data), len(d.val_data)) == (100, 0)


def test_dataset_uses_a_given_tokenizer():
    tok = CharTokenizer.from_list(["b", "a", "c", "z"])
    d = CharDataset("abcabc", tokenizer=tok)
    assert d.tokenizer is tok and d.vocab_size == 4
    np.testing.assert_array_equal(d.data, [1, 0, 2, 1, 0, 2])
    with pytest.raises(ValueError, match="'x' at position 1"):
        CharDataset("axb", tokenizer=tok)


@pytest.mark.parametrize("val_fraction", [-0.1, 1.0, 1.5])
def test_bad_val_fraction_is_rejected(val_fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        CharDataset("hello", val_fraction=val_fraction)


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        CharDataset("")


def test_batch_shapes_dtypes_and_shift(shakespeare_data):
    x, y = shakespeare_data.get_batch("train", 12, 64, np.random.default_rng(0))
    assert x.shape == y.shape == (12, 64)
    assert x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    assert x.min() >= 0 and max(x.max(), y.max()) < 65


def test_each_row_is_a_real_window_and_y_is_its_next_tokens():
    d = CharDataset(DISTINCT)
    x, y = d.get_batch("train", 32, 5, np.random.default_rng(1))
    for row_x, row_y in zip(x, y, strict=True):
        start = int(row_x[0])  # token id == position in a text of distinct characters
        np.testing.assert_array_equal(row_x, d.train_data[start : start + 5])
        np.testing.assert_array_equal(row_y, d.train_data[start + 1 : start + 6])


def test_same_seed_same_batches_other_seed_different(shakespeare_data):
    def batches(seed):
        rng = np.random.default_rng(seed)
        return [shakespeare_data.get_batch("train", 4, 16, rng) for _ in range(3)]

    first, again, other = batches(123), batches(123), batches(124)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    # Successive batches from one generator differ (the generator advances).
    assert not np.array_equal(first[0][0], first[1][0])


@pytest.mark.parametrize("split", ["train", "val"])
def test_all_offsets_stay_inside_the_split(split):
    d = CharDataset(DISTINCT)  # 81 train tokens (ids 0..80), 9 val tokens (ids 81..89)
    data = d.split_data(split)
    block = 4
    rng = np.random.default_rng(7)
    starts = set()
    for _ in range(200):
        x, y = d.get_batch(split, 8, block, rng)
        # Every token of x and y comes from this split, never from the other one.
        assert np.isin(x, data).all() and np.isin(y, data).all()
        starts.update((x[:, 0] - data[0]).tolist())
    # Every legal offset is drawn, including the last one (whose target is the split's
    # final token), and nothing beyond it.
    assert starts == set(range(len(data) - block))


def test_val_batches_come_from_the_tail(shakespeare_data):
    d = shakespeare_data
    x, y = d.get_batch("val", 2, 32, np.random.default_rng(0))
    text = d.tokenizer.decode(d.val_data)
    for row in np.concatenate([x, y]):
        assert d.tokenizer.decode(row) in text


def test_split_shorter_than_block_size_plus_one_is_an_error():
    d = CharDataset("abcdefghij" * 10)  # val split: 10 tokens
    x, _ = d.get_batch("val", 3, 9, np.random.default_rng(0))  # 10 >= 9 + 1: just fits
    assert x.shape == (3, 9)
    with pytest.raises(ValueError) as info:
        d.get_batch("val", 3, 10, np.random.default_rng(0))
    msg = str(info.value)
    assert "'val' split has 10 tokens" in msg
    assert "block_size=10 needs at least 11" in msg


def test_empty_val_split_is_an_error_when_sampled():
    d = CharDataset("hello world", val_fraction=0.0)
    with pytest.raises(ValueError, match="'val' split has 0 tokens"):
        d.get_batch("val", 1, 1, np.random.default_rng(0))


def test_get_batch_argument_errors():
    d = CharDataset(DISTINCT)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="'train' or 'val'.*'test'"):
        d.get_batch("test", 2, 4, rng)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        d.get_batch("train", 0, 4, rng)
    with pytest.raises(ValueError, match="block_size must be positive, got -1"):
        d.get_batch("train", 2, -1, rng)
    with pytest.raises(TypeError, match="block_size must be an int"):
        d.get_batch("train", 2, 4.0, rng)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        d.get_batch("train", 2, 4, 0)
