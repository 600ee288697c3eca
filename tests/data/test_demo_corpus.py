"""The demo corpus: deterministic per seed, facts consistent, the query patterns frequent and unambiguous."""

import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keras_mlm.data import demo_corpus
from keras_mlm.data.demo_corpus import COUNTRIES, generate_documents, write_demo_corpus
from keras_mlm.errors import UserInputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_documents():
    return generate_documents(seed=0)


@pytest.fixture(scope="module")
def default_text(default_documents):
    return "\n\n".join(default_documents) + "\n"


def test_same_seed_same_corpus_other_seed_different():
    assert generate_documents(seed=3, num_documents=200) == generate_documents(seed=3, num_documents=200)
    assert generate_documents(seed=3, num_documents=200) != generate_documents(seed=4, num_documents=200)


def test_same_seed_same_corpus_across_processes_with_different_hash_seeds():
    # Set or dict iteration order depending on PYTHONHASHSEED would change the text between runs.
    code = "from keras_mlm.data.demo_corpus import generate_documents as g; import hashlib; " \
           "print(hashlib.sha256('\\n\\n'.join(g(seed=7, num_documents=300)).encode()).hexdigest())"
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_fact_table_is_consistent():
    names = [c.name for c in COUNTRIES]
    capitals = [c.capital for c in COUNTRIES]
    assert 40 <= len(COUNTRIES) <= 60
    assert len(set(names)) == len(names)
    assert len(set(capitals)) == len(capitals)
    continents = {"europe", "asia", "africa", "north america", "south america", "oceania"}
    for c in COUNTRIES:
        for value in (c.name, c.capital, c.continent, c.river, c.currency, *c.languages):
            assert value and value == value.strip().lower() and value.isascii(), (c.name, value)
        assert c.languages and len(set(c.languages)) == len(c.languages), c.name
        assert c.continent in continents, c.name
    # A city is never also a country, a language or a currency (that would blur the capital slot).
    other_words = set(names) | {l for c in COUNTRIES for l in c.languages} | {c.currency for c in COUNTRIES}
    assert not set(capitals) & other_words
    # Spot checks against the real world.
    by_name = {c.name: c for c in COUNTRIES}
    assert (by_name["france"].capital, by_name["france"].currency) == ("paris", "euro")
    assert by_name["belgium"].languages == ("dutch", "french", "german")
    assert (by_name["brazil"].river, by_name["brazil"].languages) == ("amazon", ("portuguese",))


def test_every_capital_sentence_present(default_text):
    for c in COUNTRIES:
        assert f"{c.capital} is the capital of {c.name}.\n" in default_text, c.name
    assert default_text.count("paris is the capital of france") >= 20
    assert default_text.count("the quick brown fox jumps") >= 1


def test_city_subject_slot_only_ever_holds_capital(default_text):
    # "<city> is the ___" anywhere in a line, whatever precedes the city: the blank is "capital" every time.
    fillers = collections.Counter()
    for c in COUNTRIES:
        fillers.update(re.findall(rf"\b{c.capital} is the (\w+)", default_text))
    assert set(fillers) == {"capital"}
    assert fillers["capital"] > 50 * len(COUNTRIES)
    # Whatever the subject, the one-word slot before "of <country>" is "capital" (the demo query's slot).
    countries = "|".join(re.escape(c.name) for c in COUNTRIES)
    slot_fillers = set(re.findall(rf"is the (\w+) of (?:{countries})\b", default_text))
    assert slot_fillers == {"capital"}


def test_fox_query_has_sensible_majority_answers(default_text):
    # "the [MASK] brown [MASK] jumps": the most frequent fillers are "quick" and "fox", by a margin.
    fillers = collections.Counter(re.findall(r"the (\w+) brown (\w+) jumps", default_text))
    (top, top_count), (_, second_count) = fillers.most_common(2)
    assert top == ("quick", "fox")
    assert top_count > 3 * second_count


def test_documents_and_sentences_are_well_formed(default_documents):
    assert len(default_documents) == demo_corpus.DEFAULT_NUM_DOCUMENTS
    for document in default_documents:
        lines = document.split("\n")
        assert lines and all(line and line == line.strip() for line in lines)
        assert all(line[-1] in ".?" for line in lines)
        assert document == document.lower() and document.isascii()
    size = sum(len(d) + 2 for d in default_documents)
    assert 500_000 <= size <= 2_000_000


def test_write_counts_match_the_file(tmp_path):
    out = tmp_path / "nested" / "demo"
    info = write_demo_corpus(str(out), seed=1, num_documents=150)
    assert info["path"] == str(out / "demo_corpus.txt")
    assert sorted(os.listdir(out)) == ["demo_corpus.txt"]  # no temporary file left behind
    raw = (out / "demo_corpus.txt").read_bytes()
    text = raw.decode("ascii")
    assert info["bytes"] == len(raw)
    blocks = text.rstrip("\n").split("\n\n")
    assert info["documents"] == len(blocks) == 150
    assert info["sentences"] == sum(1 for line in text.splitlines() if line)
    articles = {c.name for c in COUNTRIES if f"{c.capital} is the capital of {c.name}.\n" in text}
    assert info["countries"] == len(articles)
    assert text == "\n\n".join(generate_documents(seed=1, num_documents=150)) + "\n"
    # Rewriting replaces the file in place.
    assert write_demo_corpus(out, seed=2, num_documents=5)["documents"] == 5
    assert sorted(os.listdir(out)) == ["demo_corpus.txt"]


def test_bad_input_raises_user_input_error(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UserInputError, match="must be a directory"):
        write_demo_corpus(str(a_file))
    with pytest.raises(UserInputError, match="num_documents"):
        generate_documents(num_documents=0)
    with pytest.raises(UserInputError, match="seed"):
        generate_documents(seed="0")
