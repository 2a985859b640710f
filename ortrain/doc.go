// Package ortrain is the trainer: Hugging Face Seq2SeqTrainer semantics
// (arguments, loop, callbacks, evaluation, checkpoints, best model, resume,
// reporting) over small interfaces for the training engine (Engine), the
// data (TrainData, EvalData) and generation (Generator, MetricsFunc).
// Package ortrain/engine implements them over ONNX Runtime; tests use fakes.
//
// # Reference version
//
// The reference is transformers 5.24.0 (HFVersion), read from its source
// (trainer.py, trainer_callback.py, training_args.py, trainer_seq2seq.py,
// optimization.py, trainer_utils.py). Where 5.24 differs from the 4.5x
// behaviour described in older notes, ortrain follows 5.24:
//
//   - the logged training loss is the mean since the last log, not rounded;
//   - DefaultFlowCallback also evaluates at the last step when
//     eval_strategy is steps and max_steps is not a multiple of eval_steps;
//   - grad_norm is always logged (computed without clipping when
//     max_grad_norm is 0);
//   - train_loss averages over the steps of this train() call (a resumed
//     run no longer divides by the whole global_step), and the train speed
//     metrics count this call's share of the samples;
//   - the best model is loaded after the final train metrics are logged;
//   - rotation is trainer_utils.rotate_checkpoints: the newest and the best
//     checkpoint are protected and max(save_total_limit, protected) are
//     kept, so save_total_limit=1 keeps best and last during training and
//     only the best at the end; save_strategy "best" also records
//     best_model_checkpoint;
//   - eval_loss drops non-finite batch losses when logging_nan_inf_filter;
//   - warmup_ratio no longer exists: it is accepted as the 4.x name of a
//     ratio warmup_steps; overwrite_output_dir no longer exists either: it
//     is kept with the example scripts' meaning (refuse a non-empty
//     output_dir unless set or resuming).
//
// # Loss scaling under gradient accumulation
//
// T5, MT5, BART and Marian in 5.24 have forward(..., **kwargs), so the
// Trainer passes num_items_in_batch and skips the 1/gradient_accumulation
// division, but their CrossEntropyLoss ignores it: each optimizer step's
// loss and gradient are the sum of its micro-batch means (LossScalingHF).
// With label smoothing, HF's LabelSmoother divides by the window's label
// tokens instead. LossScalingMean gives the classic 1/n_window rule (HF with
// model.accepts_loss_kwargs = False). Both are checked against real
// Seq2SeqTrainer runs (testdata/trainer/hf).
//
// # Deliberate differences
//
//   - A non-finite training loss stops training with NonFiniteLossError
//     before the optimizer applies the gradients (HF replaces the logged
//     value and lets NaN reach the weights); the last checkpoint is intact.
//   - The shuffled data order and dropout masks come from ortrain's own
//     seeded generators (a pure function of seed, epoch and position), not
//     torch's, so resuming reproduces an uninterrupted run bit for bit.
//   - EarlyStoppingCallback's counter is always restored on resume (HF
//     does so only with restore_callback_states_from_checkpoint).
//   - Checkpoint files: model.safetensors (the model's own names),
//     optimizer.safetensors, scheduler.json and rng_state.json instead of
//     optimizer.pt / scheduler.pt / rng_state.pth, training_args.json
//     instead of training_args.bin; trainer_state.json is HF's file. A
//     checkpoint is written to a temporary folder, fsynced and renamed, so
//     a kill or a full disk never leaves a partial checkpoint-N.
package ortrain
