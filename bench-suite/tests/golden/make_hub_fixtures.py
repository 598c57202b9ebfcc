"""Tiny checkpoints in every file kind the hub commits of `datasets/hub-revisions.tsv` hold, for the test that
runs the `paper` preset's size sweep and MultiBERTs trajectory and the `miniatures` preset against a loopback
hub (bench-suite/tests/hub.rs), which serves each folder under the listed repository names and commits.

Why: those commits are not all what the suite was tested on. ELECTRA, XLNet and bart-large publish only
`pytorch_model.bin` (bart-large's in fp16 storage); the MultiBERTs' `.bin` carries an int64 `position_ids`
buffer beside a BertForPreTraining state dict; the BERT miniatures' 2020 commits hold Google's original
config.json (no `model_type`) and only `vocab.txt`. Each folder here is that kind, written by the libraries
that wrote the real ones (torch.save, transformers' save_pretrained), at a tiny size (hidden 16, 2 layers,
the 64-token vocabulary below), seeded, so this script writes the same tensors on every run.

Made with: Python 3.11, torch 2.11.0 and transformers 4.57.1 (PyPI wheels).

Usage (from the repository root):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0 transformers==4.57.1
    /tmp/hfenv/bin/python bench-suite/tests/golden/make_hub_fixtures.py

Writes, into `hub/` next to this script, one folder per kind (the files the listed commit holds):
- `bart_safetensors/`: BartModel, model.safetensors, tokenizer.json (facebook/bart-base);
- `bart_fp16_bin/`: BartForConditionalGeneration in fp16 storage, pytorch_model.bin, tokenizer.json
  (facebook/bart-large);
- `bert_bf16_bin/`: BertModel in bf16 storage, pytorch_model.bin, tokenizer.json (no listed commit holds bf16
  weights; the test fine-tunes it as a local folder);
- `electra_bin/`: ElectraForPreTraining (the discriminator), pytorch_model.bin, tokenizer.json, vocab.txt;
- `albert_safetensors/`: AlbertForPreTraining (with the pooler the hub's ALBERT files carry), model.safetensors, tokenizer.json;
- `xlnet_bin/`: XLNetLMHeadModel, pytorch_model.bin, tokenizer.json;
- `t5_safetensors/`: T5ForConditionalGeneration, model.safetensors, tokenizer.json;
- `xlm_roberta_safetensors/`: XLMRobertaModel (with its pooler), model.safetensors, tokenizer.json;
- `distilbert_safetensors/`: DistilBertForMaskedLM, model.safetensors, tokenizer.json;
- `multiberts_bin/`: BertForPreTraining with the int64 `bert.embeddings.position_ids` buffer, pytorch_model.bin,
  vocab.txt, tokenizer_config.json;
- `miniature_2020_bin/`: BertForPreTraining, pytorch_model.bin, vocab.txt and the 2020 config.json (Google's
  original fields, no `model_type`).
The tokenizer.json of every folder is BERT's WordPiece over the same vocabulary (ids below every model's
vocab_size); the test is about the files and the presets, not the families' own tokenizers, which the
family tests pin.
"""

import json
import shutil
from pathlib import Path

import torch
import transformers as tf
from tokenizers import BertWordPieceTokenizer
from tokenizers.processors import TemplateProcessing

OUT = Path(__file__).resolve().parent / "hub"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "and", "was", "is", "good", "bad", "film", "plot", "very", "not", "said", "he", "she", "it", "."]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB = SPECIAL + WORDS + LETTERS + ["##" + c for c in LETTERS[:18]]
assert len(VOCAB) == 64
SIZE = dict(vocab_size=64)


def write_vocab(folder):
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")


def write_tokenizer_json(folder, one_segment=False):
    write_vocab(folder)
    tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
    if one_segment:
        # RoBERTa's and XLM-R's pair template: `<s> A </s></s> B </s>`, every type id 0 (they have
        # one token type).
        specials = [("[CLS]", 2), ("[SEP]", 3)]
        tokenizer.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] [SEP] $B:0 [SEP]:0", special_tokens=specials)
    tokenizer.save(str(folder / "tokenizer.json"))


def fresh(name):
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def save(model, name, files, safe, dtype=None):
    torch.manual_seed(0)
    folder = fresh(name)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder, safe_serialization=safe)
    if "vocab.txt" in files:
        write_vocab(folder)
    if "tokenizer.json" in files:
        write_tokenizer_json(folder, one_segment=model.config.model_type == "xlm-roberta")
        if "vocab.txt" not in files:
            (folder / "vocab.txt").unlink()
    for extra in ["generation_config.json"]:
        (folder / extra).unlink(missing_ok=True)
    return folder


def seeded(make):
    torch.manual_seed(0)
    return make()


bert = dict(SIZE, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=40, type_vocab_size=2)

save(seeded(lambda: tf.BartModel(tf.BartConfig(
    **SIZE, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
    encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=40, pad_token_id=0, bos_token_id=2,
    eos_token_id=3, decoder_start_token_id=3, forced_eos_token_id=3))),
    "bart_safetensors", ["tokenizer.json"], safe=True)
save(seeded(lambda: tf.BartForConditionalGeneration(tf.BartConfig(
    **SIZE, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
    encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=40, pad_token_id=0, bos_token_id=2,
    eos_token_id=3, decoder_start_token_id=3, forced_eos_token_id=3))),
    "bart_fp16_bin", ["tokenizer.json"], safe=False, dtype=torch.float16)
save(seeded(lambda: tf.BertModel(tf.BertConfig(**bert))), "bert_bf16_bin", ["tokenizer.json"], safe=False,
     dtype=torch.bfloat16)
save(seeded(lambda: tf.ElectraForPreTraining(tf.ElectraConfig(**bert, embedding_size=8))),
     "electra_bin", ["tokenizer.json", "vocab.txt"], safe=False)
save(seeded(lambda: tf.AlbertForPreTraining(tf.AlbertConfig(**bert, embedding_size=8, pad_token_id=0))),
     "albert_safetensors", ["tokenizer.json"], safe=True)
save(seeded(lambda: tf.XLNetLMHeadModel(tf.XLNetConfig(
    **SIZE, d_model=16, n_layer=2, n_head=2, d_inner=32, pad_token_id=0, bos_token_id=2, eos_token_id=3))),
    "xlnet_bin", ["tokenizer.json"], safe=False)
save(seeded(lambda: tf.T5ForConditionalGeneration(tf.T5Config(
    **SIZE, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2, pad_token_id=0, eos_token_id=3,
    decoder_start_token_id=0))),
    "t5_safetensors", ["tokenizer.json"], safe=True)
save(seeded(lambda: tf.XLMRobertaModel(tf.XLMRobertaConfig(**dict(bert, max_position_embeddings=42, type_vocab_size=1),
                                                                  pad_token_id=0))),
     "xlm_roberta_safetensors", ["tokenizer.json"], safe=True)
save(seeded(lambda: tf.DistilBertForMaskedLM(tf.DistilBertConfig(
    **SIZE, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=40, pad_token_id=0))),
    "distilbert_safetensors", ["tokenizer.json"], safe=True)


def bert_bin(name, config_json):
    torch.manual_seed(0)
    model = tf.BertForPreTraining(tf.BertConfig(**bert))
    state = model.state_dict()
    # What BertEmbeddings registered as a persistent buffer before transformers 4.31, and the
    # MultiBERTs' and miniatures' files carry: int64 positions 0..max_position_embeddings - 1.
    state["bert.embeddings.position_ids"] = torch.arange(bert["max_position_embeddings"]).unsqueeze(0)
    folder = fresh(name)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config_json, indent=2) + "\n")
    write_vocab(folder)
    return folder


multiberts = bert_bin("multiberts_bin", dict(
    architectures=["BertForPreTraining"], model_type="bert", attention_probs_dropout_prob=0.1, hidden_act="gelu",
    hidden_dropout_prob=0.1, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0, **bert))
(multiberts / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}) + "\n")
# Google's original bert_config.json fields, in the order the 2020 commits list them.
bert_bin("miniature_2020_bin", {
    "hidden_size": 16, "hidden_act": "gelu", "initializer_range": 0.02, "vocab_size": 64,
    "hidden_dropout_prob": 0.1, "num_attention_heads": 2, "type_vocab_size": 2, "max_position_embeddings": 40,
    "num_hidden_layers": 2, "intermediate_size": 32, "attention_probs_dropout_prob": 0.1})

for folder in sorted(OUT.iterdir()):
    print(folder.name, sorted((f.name, f.stat().st_size) for f in folder.iterdir()))
