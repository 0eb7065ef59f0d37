"""Fine-tuning one adapter: the training stage (run key, reuse, resume), the trainer, packing,
optimizers and regularizers, several processes (DDP) and stopping when a scheduler asks."""
