"""Helpers shared by the bundled-model tests (imported by name: pytest puts tests/ on sys.path)."""
from __future__ import annotations

import torch

RESPONSES = ["The cat sits on the mat.", "A dog runs.", "yes", "The answer is no, the square is blue."]


def sharpen(rm):
    """Larger head weights so that score differences are far above float noise."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (rm.head.net[0], rm.head.net[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    return rm


RELEASE_SEP = "\n\n<|resp_sep|>\n\n"


def release_reference_scores(folder, head, prompt, responses, mode="last"):
    """The release's forward pass, written from real-artifacts.md "The paper's release" (not from our code).

    Collate (mr2rm/data/dataset.py): user turn = prompt, assistant turn = the responses joined with
    "\\n\\n<|resp_sep|>\\n\\n" as ONE text, apply_chat_template(add_generation_prompt=False), text-only items
    through the tokenizer alone. Positions (mr2rm/models/reward_model.py): response i < N at the token just before
    the i-th <|resp_sep|>, the last at the final token; a response starts at the assistant text (the first) or
    right after a <|resp_sep|>. Score = head(repr) / sqrt(H).
    """
    import math

    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]},
                {"role": "assistant", "content": [{"type": "text", "text": RELEASE_SEP.join(responses)}]}]
    text = tok.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    ids = tok(text)["input_ids"]
    sep = tok.convert_tokens_to_ids("<|resp_sep|>")
    seps = [j for j, t in enumerate(ids) if t == sep]
    assert len(seps) == len(responses) - 1
    ends = [p - 1 for p in seps] + [len(ids) - 1]
    first = len(tok(text[: text.rindex(RELEASE_SEP.join(responses))])["input_ids"])
    starts = [first] + [p + 1 for p in seps]
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state[0]
        if mode == "last":
            rep = h[ends]
        elif mode == "response_mean":
            rep = torch.stack([h[s:e + 1].mean(0) for s, e in zip(starts, ends)])
        elif mode == "first_last_concat":
            rep = torch.cat([h[starts], h[ends]], dim=-1)
        else:
            raise ValueError(mode)
        return (head.float()(rep).squeeze(-1) / math.sqrt(h.shape[-1])).tolist(), ids, ends
