"""Checks a Plexus gateway with the official OpenAI Python SDK.

Usage: python openai_sdk_check.py NETWORK_JSON
(NETWORK_JSON is the network.json that `plexus up` writes.)
Exits non-zero with a message on the first check that fails.
"""
import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    info = json.load(open(sys.argv[1]))
    client = OpenAI(base_url=info["baseURL"], api_key=info["apiKey"], max_retries=0, timeout=300)
    model = "smollm2-135m"

    ids = [m.id for m in client.models.list().data]
    assert model in ids, f"models.list lacks {model}: {ids}"

    messages = [{"role": "user", "content": "Name three colours."}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, seed=7)
    text = chat.choices[0].message.content
    assert chat.object == "chat.completion" and text, chat
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason in ("stop", "length"), chat.choices[0].finish_reason
    assert chat.usage.completion_tokens > 0 and chat.usage.prompt_tokens > 0, chat.usage

    # Streaming: the same greedy answer, role first, then content, a finish reason and the usage chunk.
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, seed=7,
                                            stream=True, stream_options={"include_usage": True})
    pieces, roles, finishes, usage = [], [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finishes.append(c.finish_reason)
    assert roles == ["assistant"], roles
    assert "".join(pieces) == text, ("".join(pieces), text)
    assert len(finishes) == 1, finishes
    assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage

    # Completions, plain and streamed.
    comp = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert comp.object == "text_completion" and comp.choices[0].text, comp
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == comp.choices[0].text, (streamed, comp.choices[0].text)

    # Errors arrive as the SDK's typed exceptions.
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError:
        pass
    try:
        OpenAI(base_url=info["baseURL"], api_key="sk-wrong", max_retries=0).chat.completions.create(model=model, messages=messages)
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError:
        pass
    try:
        client.chat.completions.create(model=model, messages=messages, n=2)
        raise AssertionError("n=2 accepted")
    except openai.BadRequestError:
        pass
    print(f"openai {openai.__version__}: models, chat (plain and streamed), completions (plain and streamed) and errors all work")
    print(f"answer: {text!r}")


if __name__ == "__main__":
    main()
