"""The averaged-perceptron model: the batched decoder against the per-token reference, its
semantics on a hand-made model, the weights-file check, and the training that made the shipped
weights (preprocess/perceptron_train.py)."""
from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest

from reviewrec.preprocess import perceptron
from reviewrec.preprocess.conllu import read_conllu
from conftest import shared_data


@pytest.fixture(scope="module")
def raw() -> dict:
    return perceptron.read_weights()


@pytest.fixture(scope="module")
def model() -> perceptron.PerceptronModel:
    return perceptron.get_model()


@pytest.fixture(scope="module")
def reference(raw) -> perceptron.ReferencePerceptron:
    return perceptron.ReferencePerceptron(raw)


def _flat(rows: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    words: dict[str, int] = {}
    idx = [words.setdefault(w, len(words)) for r in rows for w in r]
    return list(words), np.array(idx, np.int64), np.array([len(r) for r in rows], np.int64)


def _batched(model: perceptron.PerceptronModel, rows: list[list[str]]) -> list[list[str]]:
    words, idx, lengths = _flat(rows)
    lab = model.tag_flat(words, idx, lengths).tolist()
    out, a = [], 0
    for n in lengths.tolist():
        out.append([model.classes[i] for i in lab[a:a + n]])
        a += n
    return out


CRAFTED = [
    ["the", "evening", "walks", "were", "long"],
    [],
    ["she"],
    ["she", "walks", "home"],
    # tag-dictionary words two in a row cut the row into segments decoded apart
    ["i", "bought", "it", "for", "my", "son", "and", "he", "loves", "it", "a", "lot", "but", "the", "update",
     "broke", "everything", "and", "now", "it", "crashes", "when", "i", "open", "it", "on", "my", "laptop"],
    ["Microsoft", "Word", "2010", "crashed", "on", "Windows", "7", "x64"],
    ["zxqv", "blorfing", "quuxes", "42nd", "o'clock", "n't", "'s", "1,299"],
    ["great", "great", "great", "great", "great", "great", "great"],
    ["a"],
    ["works", "like", "a", "charm"],
]


def test_batched_decoder_equals_reference_on_crafted_rows(model, reference):
    # empty rows, one-token rows, repeated words, names, digits, clitics, unknown words
    assert _batched(model, CRAFTED) == [reference.tag(r) for r in CRAFTED]
    # the same rows in another order and batch composition
    rows = CRAFTED[::-1] + CRAFTED[4:6]
    assert _batched(model, rows) == [reference.tag(r) for r in rows]
    assert model.tag(CRAFTED[4]) == reference.tag(CRAFTED[4])


def test_batched_decoder_equals_reference_on_ewt_dev(model, reference):
    """Every sentence of UD EWT dev (punctuation dropped, as the model's training stream), in
    one batch, cased and lowercased; and whole documents as one row (long rows, many cuts)."""
    sents = list(read_conllu(str(shared_data("ud_english_ewt", "en_ewt-ud-dev.conllu"))))
    rows = [[f for f, u in zip(s.forms, s.upos, strict=False) if u != "PUNCT"] for s in sents]
    docs: dict[str, list[str]] = {}
    for s, r in zip(sents, rows, strict=False):
        docs.setdefault(s.sent_id.rsplit("-", 1)[0], []).extend(r)
    for batch in (rows, [[w.lower() for w in r] for r in rows], list(docs.values())):
        assert _batched(model, batch) == [reference.tag(r) for r in batch]


def test_tie_break_boundaries_and_tag_dictionary_on_a_tiny_model():
    """Semantics pinned on a hand-made model: equal scores go to the greatest label, features
    read <s> / </s> past the row ends, t-1 w reads the previous label, tag-dictionary words are
    not scored, and weights are exact thousandths."""
    tiny = {"classes": ["B", "A", "C"], "tagdict": {"the": "C"}, "weights": {
        "bias": {"A": 1.0, "B": 1.0},                # A and B tie on bias alone -> B (greater)
        "w-1 <s>": {"A": 0.5},                       # first token: A
        "w+1 </s>": {"C": 1.6},                      # last token: C (1.6 > 1.0)
        "t-1 w C dog": {"A": 2.0, "B": 2.001},       # after a C-labelled word: B by 0.001
        "w dog": {"C": -5.0},
    }}
    ref, m = perceptron.ReferencePerceptron(tiny), perceptron.PerceptronModel(tiny)
    rows = [["x", "y", "z"], ["the", "dog", "y", "z"], ["x"], ["THE", "dog"]]
    want = [["A", "B", "C"], ["C", "B", "B", "C"], ["C"], ["C", "B"]]
    assert [ref.tag(r) for r in rows] == want
    assert _batched(m, rows) == want
    with pytest.raises(ValueError, match="multiple of 0.001"):
        perceptron.PerceptronModel({"classes": ["A"], "tagdict": {}, "weights": {"bias": {"A": 0.0001}}})


def test_weights_file_is_checked(tmp_path, monkeypatch):
    src = perceptron.default_weights_path()
    assert src == os.path.join(perceptron.MODELS_DIR, "builtin_pos_ud_ewt.json.gz")
    assert perceptron.file_sha256(src) == perceptron.WEIGHTS_SHA256
    raw = json.loads(gzip.decompress(open(src, "rb").read()))
    raw["weights"]["bias"]["NOUN|-"] += 1
    bad = tmp_path / "weights.json.gz"
    bad.write_bytes(gzip.compress(json.dumps(raw).encode(), compresslevel=1))
    with pytest.raises(ValueError, match=r"weights\.json\.gz: sha256 .* is not that of the shipped builtin_pos_ud_ewt"):
        perceptron.read_weights(str(bad))
    assert perceptron.read_weights(str(bad), check_hash=False)["weights"]["bias"] == raw["weights"]["bias"]
    good = tmp_path / "copy.json.gz"
    shutil.copy(src, good)
    assert perceptron.read_weights(str(good))["classes"] == raw["classes"]
    # Not in the repository's directory nor shipped by Spark: the error names the file and the fix.
    monkeypatch.setattr(perceptron, "MODELS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="builtin_pos_ud_ewt.json.gz is missing .*train_text_models"):
        perceptron.default_weights_path()


def test_training_learns_tags_and_writes_the_same_bytes():
    """A few sentences: the tag dictionary, the VerbForm labels, greedy training that tags its
    own training sentences right, and weights bytes that do not depend on the run."""
    from reviewrec.preprocess.conllu import Sentence
    from reviewrec.preprocess import perceptron_train as PT

    base = [Sentence("a", ["I", "like", "the", "dogs", "."], ["I", "like", "the", "dog", "."],
                     ["PRON", "VERB", "DET", "NOUN", "PUNCT"], ["_", "VerbForm=Fin", "_", "_", "_"]),
            Sentence("b", ["Dogs", "like", "running"], ["dog", "like", "run"], ["NOUN", "VERB", "VERB"],
                     ["_", "VerbForm=Fin", "VerbForm=Ger"]),
            Sentence("c", ["I", "like", "it"], ["I", "like", "it"], ["PRON", "ADP", "PRON"], ["_", "_", "_"])]
    sents = base * 10
    rows = PT.training_rows(sents)
    assert rows[0] == (["I", "like", "the", "dogs"], ["PRON|-", "VERB|Fin", "DET|-", "NOUN|-"])  # "." left out
    tagdict = PT.make_tagdict(rows)
    # seen >= 20 times with one label in >= 97% of them ("like" is VERB or ADP; "the" seen 10 times)
    assert tagdict == {"i": "PRON|-", "dogs": "NOUN|-"}
    model = PT.train(sents, iterations=3, seed=7)
    assert model["classes"] == ["ADP|-", "DET|-", "NOUN|-", "PRON|-", "VERB|Fin", "VERB|Ger"]
    tagger = perceptron.PerceptronModel(model)
    assert tagger.tag(["Dogs", "like", "running"]) == ["NOUN|-", "VERB|Fin", "VERB|Ger"]
    assert tagger.tag(["I", "like", "the", "dogs"])[1] == "VERB|Fin"
    assert perceptron.ReferencePerceptron(model).tag(["I", "like", "it"]) == tagger.tag(["I", "like", "it"])
    twice = PT.weights_bytes(PT.train(sents, iterations=3, seed=7))
    assert PT.weights_bytes(model) == twice
    # several seeds: each weight is the mean of the seeds' weights (in thousandths, ties to even)
    a, b = model["weights"], PT.train(sents, iterations=3, seed=8)["weights"]
    averaged = PT.train_averaged(sents, iterations=3, seeds=(7, 8))["weights"]
    want = {}
    for f in set(a) | set(b):
        for c in set(a.get(f, {})) | set(b.get(f, {})):
            m = round(a.get(f, {}).get(c, 0) * 1000) + round(b.get(f, {}).get(c, 0) * 1000)
            if m // 2 or m % 2:
                want.setdefault(f, {})[c] = (m // 2 + (m % 2 and (m // 2) % 2)) / 1000
    want = {f: {c: v for c, v in row.items() if v} for f, row in want.items()}
    assert averaged == {f: row for f, row in want.items() if row}

