"""``seqcls:MODEL``: a transformers sequence-classification reward model, one forward pass per response.

Loads ``AutoModelForSequenceClassification`` + ``AutoTokenizer`` from a Hub id or a folder (no
``trust_remote_code`` unless ``--trust-remote-code``). Each response is scored as the chat
``[user: prompt, assistant: response]`` through the tokenizer's chat template when it has one, else as
``prompt + "\\n\\n" + response``. The score is logit 0 (``num_labels == 1`` reward heads). Text only: media
is not shown to the model (these RMs are text classifiers); ``--model-arg max_length=N`` truncates.
"""
from __future__ import annotations

from .adapters import AdapterOptions
from .schema import DataError, ScoringRequest


class SeqClsAdapter:
    def __init__(self, target: str, options: AdapterOptions | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        options = options or AdapterOptions()
        unknown = sorted(set(options.extra) - {"max_length"})
        if unknown:
            raise DataError(f"unknown --model-arg {', '.join(unknown)} for seqcls:; known: max_length",
                            field="--model-arg")
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=options.trust_remote_code)
        dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16,
                 "float16": torch.float16}.get(options.dtype)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            target, trust_remote_code=options.trust_remote_code, **({"dtype": dtype} if dtype else {}))
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.max_length = int(options.extra.get("max_length", 4096))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token

    def text(self, prompt: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                tokenize=False)
        return f"{prompt}\n\n{response}"

    def score(self, request: ScoringRequest) -> list[float]:
        return self.score_batch([request])[0]

    def score_batch(self, requests: list[ScoringRequest]) -> list[list[float]]:
        texts = [self.text(r.prompt, resp) for r in requests for resp in r.responses]
        out: list[float] = []
        with self.torch.inference_mode():
            for text in texts:  # one pass per response: no padding effects on the scores
                enc = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length)
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits
                out.append(float(logits[0, 0].float()))
        scores, k = [], 0
        for r in requests:
            scores.append(out[k:k + len(r.responses)])
            k += len(r.responses)
        return scores
