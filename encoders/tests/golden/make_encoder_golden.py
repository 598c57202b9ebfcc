"""Golden outputs of HF `transformers` encoders, for encoders/tests/model.rs.

Why: our BERT/RoBERTa encoders in tch must be numerically faithful to HF `transformers`. This
script runs the reference implementation and stores inputs and outputs; the Rust tests load the
same weights and must match to 1e-4 (max abs).

Made with: Python 3.11, torch 2.11.0 (the PyPI wheel, CPU execution), transformers 5.x,
safetensors; eager attention (`attn_implementation="eager"`), eval mode, float32.

Usage (from the repository root):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0 transformers safetensors
    /tmp/hfenv/bin/python encoders/tests/golden/make_encoder_golden.py ../shared/mirror

Writes, next to this script:
- `minilm.safetensors`: token ids of a few sentence pairs (tokenised by HF from the checkpoint's
  tokenizer.json, padded) and MiniLM's last hidden state and pooler output. The weights are not
  copied: the test reads them from the mirror.
- `tiny_{bert,roberta}.safetensors` and `tiny_{bert,roberta}.json`: a small randomly initialised
  sequence classifier (seeded), its weights, inputs with padding, its logits and last hidden state.
- `tiny_{bert,roberta}_mlm.safetensors`: the same configurations as masked language models (decoder
  tied to the word embeddings), their weights, the same inputs, and their MLM logits.
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on a mat."),
    ("Stocks fell sharply on Monday after the announcement.", "Markets rallied."),
    ("hide new secretions from the parental units", None),
]


def minilm(mirror: Path) -> None:
    folder = next((mirror / "hf/sentence-transformers/all-MiniLM-L6-v2").iterdir())
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    firsts = [a for a, _ in PAIRS]
    seconds = [b for _, b in PAIRS]
    batch = tokenizer(firsts[:2], seconds[:2], padding=True, return_tensors="pt")
    single = tokenizer(firsts[2:], padding="max_length", max_length=batch["input_ids"].shape[1], return_tensors="pt")
    inputs = {key: torch.cat([batch[key], single[key]]) for key in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        out = model(**inputs)
    tensors = {key: value.contiguous() for key, value in inputs.items()}
    tensors["last_hidden_state"] = out.last_hidden_state.contiguous()
    tensors["pooler_output"] = out.pooler_output.contiguous()
    save_file(tensors, HERE / "minilm.safetensors", metadata={"transformers": transformers.__version__, "torch": torch.__version__})


def tiny(kind: str) -> None:
    torch.manual_seed(0)
    common = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=40, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                  num_labels=3, attn_implementation="eager")
    if kind == "roberta":
        config = transformers.RobertaConfig(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
        model = transformers.RobertaForSequenceClassification(config).eval()
    else:
        config = transformers.BertConfig(type_vocab_size=2, pad_token_id=0, **common)
        model = transformers.BertForSequenceClassification(config).eval()
    # Non-trivial LayerNorm parameters, so that a swapped weight/bias would show.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param.add_(0.1 * torch.randn_like(param))
    pad = config.pad_token_id
    input_ids = torch.randint(3, 120, (3, 12))
    attention_mask = torch.ones(3, 12, dtype=torch.long)
    for row, length in enumerate([12, 7, 4]):
        input_ids[row, length:] = pad
        attention_mask[row, length:] = 0
    token_type_ids = torch.zeros(3, 12, dtype=torch.long)
    if kind == "bert":
        token_type_ids[:, 6:] = 1
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                    output_hidden_states=True)
    tensors = {f"weights.{name}": value.contiguous() for name, value in model.state_dict().items()}
    tensors.update(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                   logits=out.logits.contiguous(), last_hidden_state=out.hidden_states[-1].contiguous())
    save_file(tensors, HERE / f"tiny_{kind}.safetensors", metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    (HERE / f"tiny_{kind}.json").write_text(config.to_json_string())


def tiny_mlm(kind: str) -> None:
    torch.manual_seed(1)
    config_class = transformers.RobertaConfig if kind == "roberta" else transformers.BertConfig
    config = config_class.from_json_file(HERE / f"tiny_{kind}.json")
    model_class = transformers.RobertaForMaskedLM if kind == "roberta" else transformers.BertForMaskedLM
    model = model_class(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    inputs = {key: value for key, value in
              __import__("safetensors.torch", fromlist=["load_file"]).load_file(HERE / f"tiny_{kind}.safetensors").items()
              if key in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        logits = model(**inputs).logits
    # The decoder is tied to the word embeddings: clone, since safetensors refuses shared storage.
    tensors = {f"weights.{name}": value.clone().contiguous() for name, value in model.state_dict().items()}
    tensors.update(inputs)
    tensors["logits"] = logits.contiguous()
    save_file(tensors, HERE / f"tiny_{kind}_mlm.safetensors", metadata={"transformers": transformers.__version__, "torch": torch.__version__})


if __name__ == "__main__":
    minilm(Path(sys.argv[1]))
    tiny("bert")
    tiny("roberta")
    tiny_mlm("bert")
    tiny_mlm("roberta")
    print("transformers", transformers.__version__, "torch", torch.__version__)
