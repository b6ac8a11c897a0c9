"""losses.csv: one row per (run, backend, epoch) — the per-epoch curves in a form any tool reads."""

from __future__ import annotations

import csv

COLUMNS = ("model", "hidden", "activation", "dtype", "backend", "epoch", "train_loss", "test_loss")


def write_losses_csv(experiment, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for run in experiment.runs:
            for name, result in run.results.items():
                # epoch 0 is the model before training (the tutorial's "loss before").
                spec = run.config
                key = [spec.notes.get("model", spec.to_dict()["model"]), spec.model.layers[0].hidden_size,
                       spec.notes.get("activation", ""), spec.dtype, name]
                writer.writerow([*key, 0,
                                 repr(result.train_loss_before), repr(result.test_loss_before)])
                for epoch, (train, test) in enumerate(zip(result.epoch_train_loss, result.epoch_test_loss), start=1):
                    writer.writerow([*key, epoch, repr(float(train)),
                                     repr(float(test))])
