"""Golden outputs of the HF `transformers` families beyond BERT and RoBERTa, for encoders/tests/model.rs.

Why: each family the suite implements must compute what HF's does. This script builds a small randomly
initialised sequence classifier of each family (seeded), perturbs its LayerNorm parameters so that a swapped
weight and bias would show, and stores its weights, inputs with padding, logits and last hidden state. The
Rust tests load the weights into the suite's model and must match to 1e-4 (max abs).

Made with: Python 3.11, torch 2.11.0 (the PyPI wheel, CPU execution), transformers 5.24.0, safetensors;
eager attention (`attn_implementation="eager"`), eval mode, float32.

Usage (from the repository root):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0 transformers==5.24.0 safetensors
    /tmp/hfenv/bin/python encoders/tests/golden/make_family_golden.py

Writes, next to this script, for each family `<kind>` (`electra`, `distilbert`, `xlm-roberta`, `albert`,
`bart`, `t5`, `xlnet`):
`tiny_<kind>.json` (the HF config) and `tiny_<kind>.safetensors` (`weights.*`, `input_ids`,
`attention_mask`, `token_type_ids`, `logits`, `last_hidden_state`), as `make_encoder_golden.py` does for BERT
and RoBERTa.
- ELECTRA: the discriminator's `ElectraForSequenceClassification` with `embedding_size` 16 below
  `hidden_size` 32, so that `embeddings_project` is there.
- DistilBERT: `DistilBertForSequenceClassification` (no token types; `pre_classifier`, ReLU, `classifier`).
- XLM-R: `XLMRobertaForSequenceClassification` (RoBERTa's architecture under its own `model_type`).
- ALBERT: `AlbertForSequenceClassification` with `embedding_size` 16, 4 layers in 2 shared groups of 2 inner
  layers each (HF's group index `int(i / (num_hidden_layers / num_hidden_groups))`), `gelu_new`.
- BART: `BartForSequenceClassification` (2 encoder and 2 decoder layers; the decoder reads the input shifted
  right; the head reads the decoder's state at the last `</s>`), with `scale_embedding` on. Each row is
  `<s> tokens </s>` then padding, as BART's tokenizer writes a sentence.
- T5: `T5ForSequenceClassification` (HF's encoder-decoder head on the decoder's last `</s>` state, as BART's),
  `gated-gelu` feed-forward (T5 v1.1), `d_kv` 8 with 4 heads, 2 encoder and 3 decoder layers, 8 relative
  position buckets up to distance 16 (the test sequences reach both the exact and the logarithmic buckets).
  Each row is `tokens </s>` then padding, as T5's tokenizer writes a sentence.
- XLNet: `XLNetForSequenceClassification` (relative attention, segment encoding, the summary of the last token).
  HF runs it on LEFT-padded rows, as XLNet's tokenizer pads (`A <sep> B <sep> <cls>`, types 0, 1 and 2, padding
  type 3); the file stores the same rows RIGHT-padded (padding type 0), which is what the suite feeds, and HF's
  hidden states moved to those positions (zero at padding). XLNet's attention is relative, so a real token's
  state does not depend on which side the padding is; the test compares attended positions only.
"""

from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
SIZES = dict(vocab_size=120, max_position_embeddings=40, num_labels=3, attn_implementation="eager")


def build(kind: str):
    if kind == "electra":
        config = transformers.ElectraConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            type_vocab_size=2, pad_token_id=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **SIZES)
        return config, transformers.ElectraForSequenceClassification(config)
    if kind == "distilbert":
        config = transformers.DistilBertConfig(
            dim=32, n_layers=2, n_heads=4, hidden_dim=64, pad_token_id=0, dropout=0.1, attention_dropout=0.1,
            seq_classif_dropout=0.2, **SIZES)
        return config, transformers.DistilBertForSequenceClassification(config)
    if kind == "xlm-roberta":
        config = transformers.XLMRobertaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, type_vocab_size=1,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            layer_norm_eps=1e-5, **SIZES)
        return config, transformers.XLMRobertaForSequenceClassification(config)
    if kind == "albert":
        config = transformers.AlbertConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
            num_attention_heads=4, intermediate_size=64, type_vocab_size=2, pad_token_id=0, hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, classifier_dropout_prob=0.1, **SIZES)
        return config, transformers.AlbertForSequenceClassification(config)
    if kind == "bart":
        config = transformers.BartConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=48, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            decoder_start_token_id=2, forced_eos_token_id=2, scale_embedding=True, dropout=0.1, attention_dropout=0.1,
            activation_dropout=0.1, classifier_dropout=0.1, **SIZES)
        return config, transformers.BartForSequenceClassification(config)
    if kind == "t5":
        config = transformers.T5Config(
            d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=3,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, feed_forward_proj="gated-gelu",
            dropout_rate=0.1, classifier_dropout=0.1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            vocab_size=120, num_labels=3, attn_implementation="eager")
        return config, transformers.T5ForSequenceClassification(config)
    if kind == "xlnet":
        config = transformers.XLNetConfig(
            d_model=32, n_layer=2, n_head=4, d_inner=64, vocab_size=120, pad_token_id=5, dropout=0.1,
            summary_last_dropout=0.1, num_labels=3)
        return config, transformers.XLNetForSequenceClassification(config)
    raise ValueError(kind)


def tiny(kind: str) -> None:
    torch.manual_seed(0)
    config, model = build(kind)
    model.eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                param.add_(0.1 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.add_(0.02 * torch.randn_like(param))
    pad = config.pad_token_id
    input_ids = torch.randint(3, 120, (3, 12))
    attention_mask = torch.ones(3, 12, dtype=torch.long)
    for row, length in enumerate([12, 7, 4]):
        input_ids[row, length:] = pad
        attention_mask[row, length:] = 0
        if kind == "bart":
            input_ids[row, 0] = config.bos_token_id
        if kind in ("bart", "t5"):
            input_ids[row, length - 1] = config.eos_token_id
    token_type_ids = torch.zeros(3, 12, dtype=torch.long)
    if kind in ("electra", "albert"):
        token_type_ids[:, 6:] = 1
    if kind == "xlnet":
        return xlnet_inputs(config, model)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if kind not in ("distilbert", "bart", "t5"):
        inputs["token_type_ids"] = token_type_ids
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    tensors = {f"weights.{name}": value.contiguous() for name, value in model.state_dict().items()}
    # BART: the decoder's last hidden state (what its head reads); the tied embeddings once.
    # T5: HF's decoder_hidden_states[-1] is taken before the final norm; the head reads after it.
    if kind in ("bart", "t5"):
        hidden = out.decoder_hidden_states[-1] if kind == "bart" else None
        prefix = "model" if kind == "bart" else "transformer"
        for tied in (f"weights.{prefix}.encoder.embed_tokens.weight", f"weights.{prefix}.decoder.embed_tokens.weight"):
            tensors.pop(tied, None)
    else:
        hidden = out.hidden_states[-1]
    if kind == "t5":
        captured = {}
        hook = model.transformer.decoder.register_forward_hook(lambda m, a, kw_out: captured.update(h=kw_out[0]))
        with torch.no_grad():
            model(**inputs)
        hook.remove()
        hidden = captured["h"]
    tensors.update(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                   logits=out.logits.contiguous(), last_hidden_state=hidden.contiguous())
    metadata = {"transformers": transformers.__version__, "torch": torch.__version__}
    save_file(tensors, HERE / f"tiny_{kind}.safetensors", metadata=metadata)
    (HERE / f"tiny_{kind}.json").write_text(config.to_json_string())


def xlnet_inputs(config, model) -> None:
    lengths = [12, 7, 4]
    width = max(lengths)
    left_ids = torch.full((3, width), config.pad_token_id)
    left_types = torch.full((3, width), 3)
    left_mask = torch.zeros(3, width, dtype=torch.long)
    right_ids = torch.full((3, width), config.pad_token_id)
    right_types = torch.zeros(3, width, dtype=torch.long)
    right_mask = torch.zeros(3, width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids = torch.randint(6, 120, (length,))
        ids[-1] = 3  # <cls>
        types = torch.zeros(length, dtype=torch.long)
        types[length // 2 : -1] = 1
        types[-1] = 2
        left_ids[row, width - length :], left_types[row, width - length :] = ids, types
        left_mask[row, width - length :] = 1
        right_ids[row, :length], right_types[row, :length] = ids, types
        right_mask[row, :length] = 1
    with torch.no_grad():
        out = model(input_ids=left_ids, attention_mask=left_mask, token_type_ids=left_types, output_hidden_states=True)
    left_hidden = out.hidden_states[-1]
    right_hidden = torch.zeros_like(left_hidden)
    for row, length in enumerate(lengths):
        right_hidden[row, :length] = left_hidden[row, width - length :]
    tensors = {f"weights.{name}": value.contiguous() for name, value in model.state_dict().items()}
    tensors.update(input_ids=right_ids, attention_mask=right_mask, token_type_ids=right_types,
                   logits=out.logits.contiguous(), last_hidden_state=right_hidden.contiguous())
    metadata = {"transformers": transformers.__version__, "torch": torch.__version__}
    save_file(tensors, HERE / "tiny_xlnet.safetensors", metadata=metadata)
    (HERE / "tiny_xlnet.json").write_text(config.to_json_string())


if __name__ == "__main__":
    for kind in ["electra", "distilbert", "xlm-roberta", "albert", "bart", "t5", "xlnet"]:
        tiny(kind)
    print("transformers", transformers.__version__, "torch", torch.__version__)
