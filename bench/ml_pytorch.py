"""PyTorch reference for bench/ml.ts: training steps per second of the same workloads.

    python3 bench/ml_pytorch.py WORKLOAD STEPS WARMUP THREADS DATASET_DIR

WORKLOAD is mlp (784-128-10, batch 32), mlp512 (784-512-10, batch 128) or cnn (the bench CNN,
batch 64); Adam 1e-3 and cross-entropy, shuffled batches drawn from the data set's training
images (standardized as bench/ml.ts does), as zbmd's DataLoader does. Prints one JSON object:
{"threads": T, "steps_per_sec": S} for each thread count in THREADS (comma separated), the best
of five timed runs of STEPS steps after WARMUP steps, as bench/ml.ts measures zbmd.

Bounded in time: the warmup stops after WARMUP_SECONDS_MAX, and when the warmup shows a timed run
would take over RUN_SECONDS_MAX, the runs are shortened to fit ("steps" says how many ran), so
a heavily loaded machine (two threads on a busy 2-core machine run at a few steps/s) still
finishes in about a minute per thread count.
"""

import gzip
import json
import os
import sys
import time

import torch
from torch import nn

WARMUP_SECONDS_MAX = 10.0
RUN_SECONDS_MAX = 8.0


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    dimensions = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * d : 8 + 4 * d], "big") for d in range(dimensions)]
    body = raw[4 + 4 * dimensions :]
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}(.gz) not in {directory}")


def load(directory):
    images = read_idx(find(directory, "train-images-idx3-ubyte")).float() / 255.0
    labels = read_idx(find(directory, "train-labels-idx1-ubyte")).long()
    images = (images - images.mean()) / images.std(unbiased=False)
    return images.reshape(-1, 1, 28, 28).contiguous(), labels


def model_of(workload):
    if workload == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), 32
    if workload == "mlp512":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)), 128
    if workload == "cnn":
        return (
            nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.MaxPool2d(2),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.MaxPool2d(2),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(32 * 7 * 7, 128),
                nn.ReLU(),
                nn.Linear(128, 10),
            ),
            64,
        )
    raise ValueError(f"unknown workload {workload!r} (mlp, mlp512, cnn)")


class Batches:
    """Shuffled batches, a new order each epoch, the last partial batch dropped."""

    def __init__(self, images, labels, batch_size):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.order, self.at = torch.randperm(len(labels)), 0

    def next(self):
        if self.at + self.batch_size > len(self.labels):
            self.order, self.at = torch.randperm(len(self.labels)), 0
        index = self.order[self.at : self.at + self.batch_size]
        self.at += self.batch_size
        return self.images[index], self.labels[index]


def train(model, optimizer, batches, steps, seconds_max=float("inf")):
    """Runs `steps` steps or until `seconds_max` passed; returns the steps run."""
    loss_of = nn.CrossEntropyLoss()
    started = time.perf_counter()
    for step in range(steps):
        if time.perf_counter() - started > seconds_max:
            return step
        x, y = batches.next()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(model(x), y)
        loss.backward()
        optimizer.step()
    return steps


def main():
    workload, steps, warmup, threads, directory = sys.argv[1:6]
    steps, warmup = int(steps), int(warmup)
    torch.manual_seed(1)
    images, labels = load(directory)
    results = []
    for count in [int(t) for t in threads.split(",")]:
        torch.set_num_threads(count)
        model, batch_size = model_of(workload)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batches = Batches(images, labels, batch_size)
        started = time.perf_counter()
        warmed = train(model, optimizer, batches, max(warmup, 1), WARMUP_SECONDS_MAX)
        rate = warmed / (time.perf_counter() - started)
        run_steps = max(1, min(steps, int(rate * RUN_SECONDS_MAX)))
        best = 0.0
        for _ in range(5):
            started = time.perf_counter()
            train(model, optimizer, batches, run_steps)
            best = max(best, run_steps / (time.perf_counter() - started))
        results.append({"threads": count, "steps_per_sec": round(best, 1), "steps": run_steps})
    print(json.dumps({"torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
