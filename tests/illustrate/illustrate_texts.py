"""Sentences the illustration tests draw (imported by conftest.py and the tests; importlib mode)."""

SEQ_LEN = 48  # rows of the tiny run: a sentence long enough to wrap still fits
SENTENCE = "the small cat ran to the park"
LONG_SENTENCE = " ".join(["the big dog sat on a log in the sun"] * 4)  # 40 words + [CLS]/[SEP]
