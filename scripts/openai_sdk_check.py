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
        client.chat.completions.create(model=model, messages=messages, n=9)
        raise AssertionError("n=9 accepted")
    except openai.BadRequestError:
        pass
    try:
        client.chat.completions.create(model=model, messages=messages, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
        raise AssertionError("tools accepted (and ignored)")
    except openai.BadRequestError:
        pass

    # logprobs with alternatives: one entry per token, the greedy choice first among them.
    lp = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2)
    content = lp.choices[0].logprobs.content
    assert len(content) == lp.usage.completion_tokens and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content), lp
    assert "".join(t.token for t in content) == lp.choices[0].message.content, lp
    comp_lp = client.completions.create(model=model, prompt="The sky is", max_tokens=4, temperature=0, logprobs=2)
    assert len(comp_lp.choices[0].logprobs.tokens) == len(comp_lp.choices[0].logprobs.token_logprobs) > 0, comp_lp

    # n choices, each with its index.
    several = client.chat.completions.create(model=model, messages=messages, max_tokens=6, temperature=0.9, seed=3, n=3)
    assert [c.index for c in several.choices] == [0, 1, 2] and all(c.message.content for c in several.choices), several

    # response_format: a JSON object, and a schema's value through the SDK's parse helper.
    obj = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Give a cat's name and age as JSON."}],
                                         max_tokens=600, temperature=0, response_format={"type": "json_object"})
    # An object closes within the output limit (any JSON object: its size is the model's to choose).
    assert obj.choices[0].finish_reason == "stop" and isinstance(json.loads(obj.choices[0].message.content), dict), obj
    from pydantic import BaseModel, Field

    class Step(BaseModel):
        explanation: str
        output: str

    class Answer(BaseModel):
        # Bounded, so that the whole answer fits max_tokens whatever the model writes
        # (strings without maxLength take at most 128 bytes here).
        steps: list[Step] = Field(max_length=3)
        final_answer: str
        confident: bool

    parse = client.beta.chat.completions.parse if hasattr(client, "beta") and hasattr(client.beta, "chat") else client.chat.completions.parse
    parsed = parse(model=model, messages=[{"role": "user", "content": "Solve 8x + 7 = -23 step by step."}],
                   max_tokens=1200, temperature=0, response_format=Answer)
    answer = parsed.choices[0].message.parsed
    assert isinstance(answer, Answer) and isinstance(answer.confident, bool), parsed
    try:
        client.chat.completions.create(model=model, messages=messages, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "a+"}}}}})
        raise AssertionError("an unenforceable schema accepted")
    except openai.BadRequestError:
        pass
    print(f"openai {openai.__version__}: models, chat (plain and streamed), completions (plain and streamed), logprobs, n, "
          "response_format (json_object, json_schema via parse) and errors all work")
    print(f"answer: {text!r}")


if __name__ == "__main__":
    main()
