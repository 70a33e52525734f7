"""Train: example records in, a LoRA-tuned embedding model folder out (emb-train).

- `recipe`: the defaults of the paper's recipe (temperature, batch, learning rate, LoRA), once.
- `precision`: what `--mixed-precision auto` means on this machine.
- `data`: example records -> training triples, and the seeded order of batches.
- `lora`: the model to train: the bare transformer with LoRA adapters, gradient checkpointing.
- `text_batches`: texts -> padded token tensors -> pooled vectors, as the encoder embeds them.
- `step`: one step: tokenize, embed in GradCache mini-batches, InfoNCE, backward.
- `grad_cache` and `infonce_loss`: the large-batch gradient trick and the loss with false-negative masking.
- `checkpoint`: checkpoints a killed run resumes from exactly.
- `deepspeed_configs`: the bundled ZeRO-2/ZeRO-3 configs.
- `optimizer`: AdamW and the warm-up / linear-decay schedule.
- `memory_estimate`: the per-GPU peak memory of a run, term by term, from config.json (`--estimate-memory`).
- `tracking`: `--report-to`: loss, lr, throughput, gradient norm and eval metrics through accelerate's trackers.
- `evaluation` and `best`: `--eval` (emb-eval's evaluation of the model being trained, on rank 0) and
  `--keep-best` (the best evaluated step's weights, kept across a resume, become the output).
- `loop`: the training loop, top to bottom, on one process, DDP or DeepSpeed (GradCache under each).
- `export`: the output folder that emb-encode, emb-eval and sentence-transformers load.
"""
