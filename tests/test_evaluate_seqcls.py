"""seqcls: a tiny random-weight BERT reward model built and saved here, loaded through from_pretrained."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_evaluate import build_nway, evaluate  # noqa: E402


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["question answer x xx xxx the a b c 0 1 2 3 4 5 6 7 8 9"] * 3,
                            trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=fast.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, num_labels=1))
    path = tmp_path_factory.mktemp("tiny-rm")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_seqcls_scores_equal_a_direct_forward(tiny_rm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mr2bench.adapters import AdapterOptions, load_adapter
    from mr2bench.schema import ScoringRequest

    adapter = load_adapter(f"seqcls:{tiny_rm}", AdapterOptions(device="cpu"))
    req = ScoringRequest(prompt="question 3", responses=("the a b", "xx xxx 4 5 6", "c"), item_id="i")
    got = adapter.score(req)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm).eval()
    tok = AutoTokenizer.from_pretrained(tiny_rm)
    with torch.no_grad():
        want = [float(model(**tok(f"question 3\n\n{r}", return_tensors="pt")).logits[0, 0])
                for r in req.responses]
    assert got == pytest.approx(want, abs=1e-6)
    assert len(set(got)) == 3
    assert adapter.score_batch([req, req]) == [got, got]


def test_seqcls_through_evaluate_model(tiny_rm, tmp_path):
    from mr2bench.cli import main

    build_nway(tmp_path / "img", 6, "image")
    out = tmp_path / "out"
    assert evaluate("--model", f"seqcls:{tiny_rm}", "--benchmarks", "mr2bench-image", "--data-dir",
                    str(tmp_path / "img"), "--out", str(out), "--batch-size", "3", "--device", "cpu") == 0
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    res = json.loads((out / slug / "mr2bench-image" / "results.json").read_text())
    assert res["n_scored"] == 6 and res["model"] == f"seqcls:{tiny_rm}"
    assert main(["rescore", str(out / slug)]) == 0
