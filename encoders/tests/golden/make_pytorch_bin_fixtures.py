"""`pytorch_model.bin` fixtures for the suite's reader of `torch.save` files (bench-suite/tests/pytorch_bin.rs).

Why: many public checkpoints (the MultiBERTs, the BERT miniatures, older HF repositories) are published
only as `pytorch_model.bin`, what `torch.save` writes (a zip archive since PyTorch 1.6, a bare pickle stream
before). The suite reads them with the pytorch-reader crate and never runs Python or pickled code. These
files pin what it must read and what it must refuse.

Made with: Python 3.11, torch 2.11.0 (the PyPI wheel). The tensors are small and seeded, so the files are
the same on every run of this script with the same torch.

Usage (from the repository root):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0
    /tmp/hfenv/bin/python encoders/tests/golden/make_pytorch_bin_fixtures.py

Writes, into `pytorch_bin/` next to this script:
- `state_dict.bin`: an `OrderedDict` state dict (what `model.state_dict()` returns and HF's
  `save_pretrained(safe_serialization=False)` saves) holding an fp32 matrix, an fp16 vector, a bf16 vector,
  two tensors that share one storage (a tied decoder and embedding), a non-contiguous view (a transpose) and
  a view at a storage offset (a row of another tensor), and an int64 buffer;
- `state_dict.safetensors`: the same tensors, each made contiguous, the values the reader must give;
- `plain_dict.bin`: the same with a plain `dict` (what `torch.save({...})` writes);
- `legacy.bin`: the same state dict in the pre-1.6 format (`_use_new_zipfile_serialization=False`), which
  older hub checkpoints use;
- `not_tensors.bin`: a dict holding a tensor and an int (a training checkpoint, not a state dict);
- `code.bin`: a zip whose pickle calls `os.system` (what a malicious checkpoint does); made without running it;
- `truncated.bin`: `state_dict.bin` cut in half;
- `tiny_bert/pytorch_model.bin`: the tiny BERT classifier of `make_encoder_golden.py` (its weights read from
  `tiny_bert.safetensors`) as transformers 4's `save_pretrained(..., safe_serialization=False)` wrote it
  (`torch.save` of the model's `state_dict()`; transformers 5 writes only safetensors), whose logits on the
  golden inputs are pinned in `tiny_bert.safetensors`.
"""

import collections
import io
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

out = Path(__file__).parent / "pytorch_bin"
out.mkdir(exist_ok=True)

generator = torch.Generator().manual_seed(0)
embedding = torch.randn(5, 4, generator=generator)
matrix = torch.randn(3, 4, generator=generator)
tensors = collections.OrderedDict(
    [
        ("encoder.weight", torch.randn(4, 3, generator=generator)),
        ("encoder.bias_fp16", torch.randn(4, generator=generator).to(torch.float16)),
        ("encoder.bias_bf16", torch.randn(4, generator=generator).to(torch.bfloat16)),
        ("embeddings.word_embeddings.weight", embedding),
        # Tied: the same storage under two names, as a tied MLM decoder is saved.
        ("lm_head.decoder.weight", embedding),
        # A non-contiguous view of another tensor's storage.
        ("head.transposed", matrix.t()),
        # A view at a storage offset (row 1 of `matrix`).
        ("head.row", matrix[1]),
        ("embeddings.position_ids", torch.arange(6).unsqueeze(0)),
    ]
)
assert tensors["lm_head.decoder.weight"].untyped_storage().data_ptr() == embedding.untyped_storage().data_ptr()
assert not tensors["head.transposed"].is_contiguous()
assert tensors["head.row"].storage_offset() == 4

torch.save(tensors, out / "state_dict.bin")
torch.save(dict(tensors), out / "plain_dict.bin")
torch.save(tensors, out / "legacy.bin", _use_new_zipfile_serialization=False)
save_file({name: tensor.contiguous().clone() for name, tensor in tensors.items()}, out / "state_dict.safetensors")
torch.save({"model": torch.zeros(2), "step": 3}, out / "not_tensors.bin")

# A pickle that would run `os.system("echo pwned")` if unpickled by Python; the suite must refuse it.
class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/intrinsic-bench-pwned",))


payload = pickle.dumps({"weight": Exploit()}, protocol=2)
with zipfile.ZipFile(out / "code.bin", "w", compression=zipfile.ZIP_STORED) as archive:
    archive.writestr("code/data.pkl", payload)
    archive.writestr("code/byteorder", "little")
    archive.writestr("code/version", "3\n")

whole = (out / "state_dict.bin").read_bytes()
(out / "truncated.bin").write_bytes(whole[: len(whole) // 2])

# The tiny BERT classifier as transformers 4 saved a .bin: torch.save of the state dict, HF's names.
import json

import transformers
from safetensors.torch import load_file

golden = Path(__file__).parent
config = transformers.BertConfig(**json.loads((golden / "tiny_bert.json").read_text()))
model = transformers.BertForSequenceClassification(config).eval()
weights = {name[len("weights.") :]: tensor for name, tensor in load_file(golden / "tiny_bert.safetensors").items() if name.startswith("weights.")}
missing, unexpected = model.load_state_dict(weights, strict=False)
assert not unexpected and all(name.endswith("position_ids") for name in missing), (missing, unexpected)
(out / "tiny_bert").mkdir(exist_ok=True)
torch.save(model.state_dict(), out / "tiny_bert" / "pytorch_model.bin")

# Python's own reader reads them back (a check of this script, not of the suite).
for name in ["state_dict.bin", "plain_dict.bin", "legacy.bin"]:
    loaded = torch.load(out / name, weights_only=True)
    for key, tensor in tensors.items():
        assert torch.equal(loaded[key], tensor), (name, key)
print("wrote", sorted(path.name for path in out.iterdir()))
