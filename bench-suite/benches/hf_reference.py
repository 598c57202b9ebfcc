"""The HF transformers reference of `cargo xtask bench all` (bench-suite/benches/RESULTS.md).

Times what the suite's own benchmarks time, with HF's classes, in the same run:
  step   one full fine-tuning step of AutoModelForSequenceClassification (AdamW, gradient clipping at 1.0)
         on random full-length batches of the given shape: the median after two warm-up steps;
  epoch  one epoch of full fine-tuning on a JSONL task that `cargo xtask bench all` wrote (the same rows the
         suite trains on), tokenized by HF's tokenizer of the same checkpoint, batched by HF's
         DataCollatorWithPadding with a random sampler (`--sampler random`, what Trainer does by default)
         or Trainer's LengthGroupedSampler (`--sampler group_by_length`), AdamW with weight decay off for
         biases and LayerNorm weights, linear warm-up and decay (get_linear_schedule_with_warmup), gradient
         clipping at 1.0, then dev accuracy. A plain loop over those pieces, not `Trainer` itself (which
         needs `accelerate` and adds its own logging).
Prints one JSON object on stdout. Needs `pip install torch==2.11.0 transformers==4.57.1` (the versions the
suite's parity tests use); never a test dependency.
"""

import argparse
import json
import statistics
import time

import torch
from torch.utils.data import DataLoader, RandomSampler
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
import transformers


def optimizer(model, lr, weight_decay):
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def train_step(model, batch, opt, schedule=None):
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if schedule is not None:
        schedule.step()
    opt.zero_grad(set_to_none=True)


def step(args):
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    model.train()
    opt = optimizer(model, args.lr, 0.01)
    generator = torch.Generator().manual_seed(0)
    times = []
    for index in range(args.steps + 2):
        ids = torch.randint(5, model.config.vocab_size, (args.batch, args.seq), generator=generator)
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
            "labels": torch.arange(args.batch) % 2,
        }
        start = time.perf_counter()
        train_step(model, batch, opt)
        times.append(time.perf_counter() - start)
    return {"median_step_s": statistics.median(times[2:]), "steps_timed": args.steps}


def read_jsonl(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def epoch(args):
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def encode(rows):
        examples = []
        for row in rows:
            example = dict(tokenizer(row[args.text], truncation=True, max_length=args.max_len))
            example["labels"] = int(row[args.label])
            examples.append(example)
        return examples

    train, dev = encode(read_jsonl(args.train)), encode(read_jsonl(args.dev))
    lengths = [len(example["input_ids"]) for example in train]
    if len(set(lengths)) == 1:
        raise SystemExit(f"every training example has {lengths[0]} tokens: the tokenizer pads; padding is not measured")
    generator = torch.Generator().manual_seed(args.seed)
    if args.sampler == "group_by_length":
        sampler = LengthGroupedSampler(args.batch, lengths=lengths, generator=generator)
    else:
        sampler = RandomSampler(train, generator=generator)
    collator = DataCollatorWithPadding(tokenizer)
    loader = DataLoader(train, batch_size=args.batch, sampler=sampler, collate_fn=collator)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    model.train()
    opt = optimizer(model, args.lr, 0.01)
    steps = len(loader)
    # Warm-up steps rounded to the nearest, as the suite's trainer does (Trainer rounds up).
    schedule = get_linear_schedule_with_warmup(opt, int(args.warmup_ratio * steps + 0.5), steps)
    real = padded = 0
    start = time.perf_counter()
    for batch in loader:
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
        train_step(model, batch, opt, schedule)
    train_s = time.perf_counter() - start

    model.eval()
    start = time.perf_counter()
    correct = 0
    with torch.inference_mode():
        for batch in DataLoader(dev, batch_size=args.batch, collate_fn=collator):
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    eval_s = time.perf_counter() - start
    return {
        "sampler": args.sampler,
        "steps": steps,
        "train_s": train_s,
        "eval_s": eval_s,
        "dev_accuracy": correct / len(dev),
        "padding_fraction": 1 - real / padded,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("step")
    s.add_argument("--model", required=True, help="an HF folder (config.json, weights)")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--seq", type=int, default=128)
    s.add_argument("--steps", type=int, default=6)
    s.add_argument("--lr", type=float, default=2e-5)
    e = sub.add_parser("epoch")
    e.add_argument("--model", required=True, help="an HF folder (config.json, weights, tokenizer)")
    e.add_argument("--train", required=True)
    e.add_argument("--dev", required=True)
    e.add_argument("--text", default="sentence")
    e.add_argument("--label", default="label")
    e.add_argument("--max-len", type=int, default=128)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--lr", type=float, default=5e-5)
    e.add_argument("--warmup-ratio", type=float, default=0.06)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--sampler", choices=["random", "group_by_length"], default="random")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = step(args) if args.what == "step" else epoch(args)
    result.update(
        {"torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads()}
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
