"""PyTorch reference for bench/gpt.ts: training tokens per second of the same small GPT.

    python3 bench/gpt_pytorch.py CORPUS BLOCK LAYERS HEADS DIM BATCH STEPS WARMUP THREADS

The model is zbmd's Gpt (src/ml/nn/gpt.ts) written in torch: token + position embeddings,
pre-norm causal blocks (separate query/key/value/output projections, GELU-tanh MLP of 4 x DIM),
a final LayerNorm and a head tied to the token embedding; Adam 1e-3, mean cross-entropy over
every position. Batches are BATCH windows of BLOCK characters of CORPUS drawn at random from
the same windows zbmd trains on (the first 90% of the text, in steps of BLOCK). Prints one JSON
object: {"torch", "results": [{"threads", "tokens_per_sec", "steps"}]}, for each thread count in
THREADS (comma separated), the best of three timed runs of STEPS steps after WARMUP steps,
shortened to fit RUN_SECONDS_MAX on a loaded machine.
"""

import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

RUN_SECONDS_MAX = 8.0


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        y = F.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ v
        return self.output(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.fc, self.projection = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.projection(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, block, layers, heads, dim):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.randn(block, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tokens.weight.T


def main():
    corpus, block, layers, heads, dim, batch, steps, warmup, threads = sys.argv[1:10]
    block, layers, heads, dim, batch, steps, warmup = map(int, (block, layers, heads, dim, batch, steps, warmup))
    with open(corpus, encoding="utf-8") as handle:
        text = handle.read()
    vocabulary = sorted(set(text))
    index = {c: i for i, c in enumerate(vocabulary)}
    tokens = torch.tensor([index[c] for c in text[: int(len(text) * 0.9)]], dtype=torch.long)
    windows = (len(tokens) - 1) // block
    x_all = tokens[: windows * block].view(windows, block)
    y_all = tokens[1 : windows * block + 1].view(windows, block)
    torch.manual_seed(1)
    results = []
    for count in [int(t) for t in threads.split(",")]:
        torch.set_num_threads(count)
        model = Gpt(len(vocabulary), block, layers, heads, dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def run(n):
            for _ in range(n):
                pick = torch.randint(0, windows, (batch,))
                logits = model(x_all[pick])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y_all[pick].reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        started = time.perf_counter()
        run(max(1, warmup))
        rate = max(1, warmup) / (time.perf_counter() - started)
        run_steps = max(1, min(steps, int(rate * RUN_SECONDS_MAX)))
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            run(run_steps)
            best = max(best, run_steps * batch * block / (time.perf_counter() - started))
        results.append({"threads": count, "tokens_per_sec": round(best, 1), "steps": run_steps})
    print(json.dumps({"torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
