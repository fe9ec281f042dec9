"""The echo model's answer is streamed as its words, each with the whitespace before it: the
deltas a client receives join to exactly the answer, code blocks' indentation included."""

from __future__ import annotations

import re

import pytest

from server.llm import ChatMessage, ChatRequest
from server.llm.echo_answer import compose

PROMPTS = (
    "hello there",
    "  words   spread\tout\n\nover  lines  ",
    "write a python program in two files: app.py and helpers.py",
    "write a bash script that greets",
)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_words_of_an_answer_join_to_it(prompt: str) -> None:
    answer = compose(ChatRequest(model="echo", messages=[ChatMessage.user(prompt)]))
    tokens = list(answer.tokens())
    assert "".join(tokens) == answer.text
    assert all(re.fullmatch(r"\s*\S+", token) for token in tokens)
    assert len(tokens) == len(answer.text.split())
