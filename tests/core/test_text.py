"""Word matching shared by every rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_assigner.core.text import find_keyword, find_path_hint, first_label, path_words


@pytest.mark.parametrize(
    ("text", "keywords", "found"),
    [
        ("refactor the parser", ["refactor"], "refactor"),
        ("refactoring the parser", ["refactor"], "refactor"),  # start of a word
        ("prerefactor step", ["refactor"], None),
        ("(refactor)", ["refactor"], "refactor"),
        ("run the migrations", ["migration"], "migration"),
        ("immigration rules", ["migration"], None),
        ("a breaking   change here", ["breaking change"], "breaking change"),
        ("a breaking\nchange", ["breaking change"], "breaking change"),
        ("breaking things", ["breaking change"], None),
        ("fix the reproduction steps", ["production"], None),
        ("deploy to production", ["production"], "production"),
        ("x.production", ["production"], "production"),  # '.' ends a word
        ("", ["refactor"], None),
        ("refactor and migrate", ["migrate", "refactor"], "migrate"),  # keyword order wins
        ("c++ rewrite", ["c++"], "c++"),
    ],
)
def test_find_keyword(text: str, keywords: list[str], found: str | None) -> None:
    assert find_keyword(text, keywords) == found


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/home/coder/api-server", {"home", "coder", "api", "server"}),
        ("C:\\Work\\My_UI.v2", {"c", "work", "my", "ui", "v2"}),
        ("", set()),
        ("///", set()),
    ],
)
def test_path_words(path: str, words: set[str]) -> None:
    assert path_words(path) == words


@pytest.mark.parametrize(
    ("path", "hints", "found"),
    [
        ("/home/coder/api-server", ["api", "server"], "api"),
        ("/home/coder/api-server", ["server", "api"], "server"),
        ("/home/coder/build", ["ui"], None),
        ("/home/coder/capital", ["api"], None),
        ("/srv/K8S/cluster", ["k8s"], "k8s"),
        ("/srv/products", ["prod"], None),
        ("", ["prod"], None),
    ],
)
def test_find_path_hint(path: str, hints: list[str], found: str | None) -> None:
    assert find_path_hint(path, hints) == found


def test_first_label_follows_the_wanted_order() -> None:
    labels = {"security", "backend", "hotfix"}
    assert first_label(labels, ["production", "hotfix", "security"]) == "hotfix"
    assert first_label(labels, ["security", "hotfix"]) == "security"
    assert first_label(labels, ["CI/CD"]) is None
    assert first_label({"ci/cd"}, ["CI/CD"]) == "CI/CD"
    assert first_label(set(), ["x"]) is None


# Enough keywords that find_keyword searches its index of the text, not one
# regular expression per keyword: both ways must find the same keyword.
FILLER = [f"zzfiller{i}" for i in range(20)]


@pytest.mark.parametrize(
    ("text", "keywords", "found"),
    [
        ("refactor the parser", ["refactor"], "refactor"),
        ("refactoring the parser", ["refactor"], "refactor"),
        ("prerefactor step", ["refactor"], None),
        ("(refactor)", ["refactor"], "refactor"),
        ("immigration rules", ["migration"], None),
        ("a breaking   change here", ["breaking change"], "breaking change"),
        ("a breaking\nchange", ["breaking change"], "breaking change"),
        ("a breaking\t\n change", ["breaking  change"], "breaking  change"),
        ("breaking things", ["breaking change"], None),
        ("breakingchange", ["breaking change"], None),
        ("x.production", ["production"], "production"),
        ("", ["refactor"], None),
        ("refactor and migrate", ["migrate", "refactor"], "migrate"),
        ("c++ rewrite", ["c++"], "c++"),
        ("..c++", [".c++"], ".c++"),
        ("a.c++", [".c++"], None),  # '.' follows a letter: not a word start
    ],
)
def test_find_keyword_by_index_agrees(text: str, keywords: list[str], found: str | None) -> None:
    assert find_keyword(text, keywords + FILLER) == found
    assert find_keyword(text, FILLER + keywords) == found


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab .-\n\t", max_size=60),
    st.lists(st.text(alphabet="ab .-", min_size=1, max_size=6).filter(str.strip), max_size=4),
)
def test_the_index_finds_what_the_expressions_find(text: str, keywords: list[str]) -> None:
    by_expression = find_keyword(text, keywords)
    by_index = find_keyword(text, keywords + FILLER)
    assert by_index == by_expression
