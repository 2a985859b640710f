#!/usr/bin/env python3
"""Dropout-free rerun of scripts/refs/trainer_refs.py's Seq2SeqTrainer scenarios.

trainer_refs.py turns off every nn.Dropout module and sets
config.dropout_rate = 0, but T5Attention copies config.dropout_rate into a
float attribute at construction (transformers 5.24 modeling_t5.py:
`self.dropout = config.dropout_rate`, used by nn.functional.dropout on the
attention weights), so attention dropout stays active at p=0.1 and the
reference losses depend on torch's RNG stream, which no other
implementation can reproduce. This wrapper runs the same scenarios with the
same code after also zeroing those float attributes, and writes
testdata/trainer/hf/<scenario>/{scenario.json,trainer_state.json}, plus
scenarios of its own: steps_ga4_ls (label smoothing with accumulation) and
steps_adafactor (optim="adafactor"), steps_tokens_seen
(include_num_input_tokens_seen="non_padding").

Run: .venv/bin/python scripts/refs/trainer_hf_refs.py [scenario ...]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import trainer_refs as tr  # noqa: E402

_load = tr.fl.load_fixture


def load_without_dropout(name, root=None):
    model = _load(name, root)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0  # T5Attention's functional attention dropout
    model.config.dropout_rate = 0.0
    return model


tr.fl.load_fixture = load_without_dropout
# Label smoothing with gradient accumulation: LabelSmoother divides each
# micro-batch's token sum by the window's label tokens (num_items_in_batch).
tr.SCENARIOS["steps_ga4_ls"] = dict(
    per_device_train_batch_size=4, gradient_accumulation_steps=4, num_train_epochs=1,
    warmup_steps=1, max_grad_norm=0.5, logging_steps=1, label_smoothing_factor=0.1,
    eval_strategy="steps", eval_steps=2, save_strategy="no",
)
# optim="adafactor": the Trainer's Adafactor (scale_parameter and
# relative_step off) with the linear schedule, decay and clipping.
tr.SCENARIOS["steps_adafactor"] = dict(
    optim="adafactor", learning_rate=3e-4, weight_decay=0.01, per_device_train_batch_size=4,
    gradient_accumulation_steps=2, num_train_epochs=2, warmup_steps=2, max_grad_norm=1.0, logging_steps=1,
    eval_strategy="steps", eval_steps=4, save_strategy="no",
)
# include_num_input_tokens_seen: the attention mask's sum of every
# micro-batch, logged as num_input_tokens_seen (with the session's tokens
# per second on the training logs).
tr.SCENARIOS["steps_tokens_seen"] = dict(
    per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=6, logging_steps=2,
    include_num_input_tokens_seen="non_padding", eval_strategy="steps", eval_steps=3, save_strategy="no",
)
tr.OUT = os.path.join(tr.fl.TESTDATA, "trainer", "hf")

if __name__ == "__main__":
    tr.main()
