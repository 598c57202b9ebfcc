"""HF `transformers` loads a checkpoint folder written by the suite's pre-training, unchanged.

Why: the suite's MLM pre-training writes HF-format folders (config.json, model.safetensors under HF
tensor names, tokenizer.json) that other tools must be able to read. This script loads such a
folder with `AutoModelForMaskedLM` and `AutoTokenizer`-free inputs, fails if HF reports a missing,
unexpected or mismatched tensor, and stores HF's MLM logits on fixed inputs; the Rust test
`an_hf_checkpoint_read_back_gives_identical_logits` (bench-suite/tests/pretrain.rs) compares the
suite's logits for the same folder with them (1e-5), so the check holds without Python in CI.

Made with: Python 3.11, torch 2.11.0 (the PyPI wheel, CPU execution), transformers 5.24.0,
safetensors; eager attention, eval mode, float32.

Usage (from the repository root):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0 transformers safetensors
    INTRINSIC_BENCH_WRITE_PRETRAIN_CHECKPOINT=/tmp/pretrain-checkpoint \\
        cargo xtask test -- --test pretrain an_hf_checkpoint   # or cargo test -p bench-suite --test pretrain
    /tmp/hfenv/bin/python bench-suite/tests/golden/make_pretrain_golden.py /tmp/pretrain-checkpoint

Writes, next to this script, `pretrain_checkpoint_hf.safetensors`: the input ids and attention mask
the test uses and HF's logits.
"""

import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

folder = Path(sys.argv[1])
model, info = transformers.AutoModelForMaskedLM.from_pretrained(
    folder, attn_implementation="eager", output_loading_info=True
)
problems = {key: value for key, value in info.items() if value and key != "error_msgs"}
if problems or info.get("error_msgs"):
    sys.exit(f"HF did not load {folder} cleanly: {info}")
print(f"loaded {type(model).__name__} from {folder}: {info}")
model.eval()
input_ids = torch.tensor([[2, 9, 10, 11, 4, 3], [2, 12, 13, 3, 0, 0]], dtype=torch.int64)
attention_mask = (input_ids != 0).to(torch.int64)
with torch.no_grad():
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
out = Path(__file__).parent / "pretrain_checkpoint_hf.safetensors"
save_file({"input_ids": input_ids, "attention_mask": attention_mask, "logits": logits.contiguous()}, str(out))
print(f"wrote {out} (transformers {transformers.__version__}, torch {torch.__version__})")
