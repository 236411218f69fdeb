"""Generated tasks: labels checked by rule, reproducible under a seed, word list provenance."""

from __future__ import annotations

import re

import pytest

from robustperf.llm.tasks import (
    PASSWORD_SEPARATOR,
    TaskError,
    build_task,
    bundled_words,
    load_words,
    password_match,
    word_length,
)


def test_bundled_word_list_is_lowercase_words():
    words = bundled_words()
    assert 3000 <= len(words) <= 5000
    assert all(re.fullmatch(r"[a-z]{3,10}", w) for w in words)
    assert len(set(words)) == len(words)


def test_password_match_labels_follow_the_rule():
    examples = password_match(300, seed=3)
    assert {e.label for e in examples} == {0, 1}
    assert abs(sum(e.label for e in examples) - 150) <= 1
    for e in examples:
        password = re.search(r'If it is "([a-z]+)"', e.prefix).group(1)
        attempt = e.prefix.rsplit(PASSWORD_SEPARATOR, 1)[1]
        assert e.label == int(password == attempt)
        assert e.closing == PASSWORD_SEPARATOR  # the attack block goes before the closing separator
        assert e.text.endswith(f"{PASSWORD_SEPARATOR}{attempt}{PASSWORD_SEPARATOR}")


def test_word_length_labels_follow_the_rule():
    examples = word_length(300, seed=4)
    for e in examples:
        first, second = re.search(r"Word 1: ([a-z]+)\. Word 2: ([a-z]+)\.", e.text).groups()
        assert e.label == int(len(second) > len(first))  # ties are 0 (papers/000 Table 2)
        assert e.closing == ""
    assert abs(sum(e.label for e in examples) - 150) <= 1


def test_tasks_are_seeded_and_splits_differ():
    a = build_task("password_match", 50, seed=1, split="train")
    b = build_task("password_match", 50, seed=1, split="train")
    v = build_task("password_match", 50, seed=1, split="validation")
    assert a == b
    assert a != v


def test_custom_word_list_and_missing_file(tmp_path):
    path = tmp_path / "words"
    path.write_text("# comment\nalpha\nbeta\n\ngamma\n")
    assert load_words(path) == ("alpha", "beta", "gamma")
    examples = password_match(10, seed=0, words=load_words(path))
    assert all(re.search(r'"(alpha|beta|gamma)"', e.prefix) for e in examples)
    with pytest.raises(TaskError, match="not found"):
        load_words(tmp_path / "nope")


def test_file_tasks_read_jsonl_and_name_the_fix(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "buy now", "label": 1}\n{"text": "meeting at 3", "label": 0}\n')
    examples = build_task("spam", 5, seed=0, split="train", path=tmp_path)
    assert sorted(e.label for e in examples) == [0, 1]
    with pytest.raises(TaskError, match="task.path"):
        build_task("imdb", 5, seed=0)
    with pytest.raises(TaskError, match="validation"):
        build_task("spam", 5, seed=0, split="validation", path=tmp_path)
