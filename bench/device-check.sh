#!/usr/bin/env bash
# One check of zbmd on a machine with an NVIDIA GPU (H100/H200), CUDA and PyTorch, no network.
# Runs in about 8 minutes at most: every step has its own time limit, and a failing step is
# recorded and the next one runs. Results go to $OUT (default ./device-check-out) as JSON:
#   env.json            node, python, torch, nvidia-smi
#   cuda-tests.json     vitest's JSON report of tests/gpu/cuda.test.ts (and cuda-tests.log)
#   bench-gpu.json      `zbmd bench gpu --json`: vector add, matmul f32/tf32/bf16 (with PyTorch
#                       bf16 and the ratio), launch overhead, device training steps/s
#   torch-matmul.json   PyTorch f32 (no TF32) and bf16 matmul GFLOP/s on the same GPU
#   zbmd-train.json     zbmd MLP and CNN training steps/s on cuda:0 (tensors and autograd there)
#   torch-train.json    the same models in PyTorch eager on the same GPU
#   train-cli.json      `zbmd train --device cuda:0 --model cnn --json` on the shipped tiny data
#                       set: the supervised run on the device (tensor_backend must say cuda)
#   summary.json        each step's status and seconds, and the ratios the issue's targets name
# Usage: bench/device-check.sh  (after `npm install`; PYTHON=/path/to/python picks the Python with
# torch; ZBMD_CHECK_DEVICE=webgpu runs the zbmd training step on another device, for trying it out)
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/device-check-out}"
# The Python that has PyTorch with CUDA (a venv's, say); default python3.
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
cd "$ROOT" || exit 1

STEPS_FILE="$OUT/steps.tsv"
: >"$STEPS_FILE"

# run_step NAME LIMIT_SECONDS FUNCTION: runs the shell function FUNCTION (exported) in a child
# bash under `timeout`, logs to $OUT/NAME.log, and records NAME, exit status and seconds; never
# stops the script.
run_step() {
  local name="$1" limit="$2" function="$3"
  local started ended status
  started=$(date +%s)
  echo "== $name (at most ${limit}s)" >&2
  timeout --kill-after=10 "$limit" bash -c "$function" >"$OUT/$name.log" 2>&1
  status=$?
  ended=$(date +%s)
  printf '%s\t%s\t%s\n' "$name" "$status" "$((ended - started))" >>"$STEPS_FILE"
  if [ "$status" -ne 0 ]; then echo "   $name failed with status $status (see $OUT/$name.log)" >&2; fi
  return 0
}

# --- environment ---------------------------------------------------------------------------
environment() {
  # The script is JavaScript: its template literals are not shell expansions.
  # shellcheck disable=SC2016
  node -e '
    const { execSync } = require("node:child_process");
    const ask = (command) => { try { return execSync(command, { encoding: "utf8", timeout: 20000 }).trim(); } catch (error) { return `unavailable: ${String(error.message).split("\n")[0]}`; } };
    const info = {
      node: process.version,
      python: ask(`${process.env.PYTHON} --version`),
      torch: ask(`${process.env.PYTHON} -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"`),
      nvidia_smi: ask("nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"),
    };
    process.stdout.write(JSON.stringify(info, null, 2) + "\n");
  ' >"$OUT/env.json"
}

# --- build ---------------------------------------------------------------------------------
build() {
  if [ -f dist/src/cli/main.js ] && [ -f dist/bench/gpu.js ]; then
    echo "dist is present"
  else
    npm run build
  fi
}

# --- CUDA tests ----------------------------------------------------------------------------
cuda_tests() {
  npx vitest run tests/gpu/cuda.test.ts --reporter=default --reporter=json --outputFile="$OUT/cuda-tests.json"
}

# --- zbmd bench gpu ------------------------------------------------------------------------
bench_gpu() {
  node bin/zbmd.js bench gpu --json >"$OUT/bench-gpu.json"
}

# --- PyTorch matmul on the same GPU --------------------------------------------------------
torch_matmul() {
  "$PYTHON" - "$OUT/torch-matmul.json" <<'PY'
import json, sys, time
try:
    import torch
except ImportError as error:
    json.dump({"error": f"no torch: {error}"}, open(sys.argv[1], "w"))
    raise SystemExit(1)

out = {}
if not torch.cuda.is_available():
    out["error"] = "torch.cuda.is_available() is False"
else:
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 4096
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            torch.matmul(a, b)
        torch.cuda.synchronize()
        repetitions = 20
        started = time.perf_counter()
        for _ in range(repetitions):
            torch.matmul(a, b)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / repetitions
        out[f"torch_matmul_gflops_{name}"] = round(2 * n**3 / seconds / 1e9, 1)
    out["matmul_n"] = n
    out["device"] = torch.cuda.get_device_name(0)
json.dump(out, open(sys.argv[1], "w"), indent=2)
PY
}

# --- zbmd training on cuda:0 ---------------------------------------------------------------
zbmd_train() {
  node --input-type=module - "$OUT/zbmd-train.json" <<'JAVASCRIPT'
import { writeFileSync } from 'node:fs';
const ml = await import(`${process.cwd()}/dist/src/ml/index.js`);
const gpu = await import(`${process.cwd()}/dist/src/gpu/index.js`);
const out = {};
let device;
try {
  device = await gpu.openDevice(process.env.ZBMD_CHECK_DEVICE ?? 'cuda');
  out.device = device.info().name;
} catch (error) {
  out.zbmd_open_error = String(error?.message ?? error).split('\n')[0];
  writeFileSync(process.argv[2], `${JSON.stringify(out, null, 2)}\n`);
  process.exit(1);
}

function mlp() {
  return new ml.Sequential(new ml.Flatten(), new ml.Linear(784, 512), new ml.ReLU(), new ml.Linear(512, 10));
}
function cnn() {
  return new ml.Sequential(
    new ml.Conv2d(1, 16, 3, { padding: 1 }), new ml.MaxPool2d(2), new ml.ReLU(),
    new ml.Conv2d(16, 32, 3, { padding: 1 }), new ml.MaxPool2d(2), new ml.ReLU(),
    new ml.Flatten(), new ml.Linear(32 * 7 * 7, 128), new ml.ReLU(), new ml.Linear(128, 10),
  );
}

async function stepsPerSecond(name, makeModel, batch) {
  try {
    ml.manualSeed(1);
    const model = await makeModel().to(device);
    const optimizer = new ml.Adam(model.parameters(), { learningRate: 1e-3 });
    const images = ml.fromData(new Float32Array(batch * 784).map((_, i) => (i % 255) / 255), [batch, 1, 28, 28]);
    const x = await images.to(device);
    const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
    const step = () => {
      const loss = ml.crossEntropy(model.forward(x), labels);
      ml.backward(loss);
      optimizer.step();
      optimizer.zeroGrad();
      return loss;
    };
    for (let i = 0; i < 20; i++) ml.disposeGraph(step());
    await ml.detach(model.parameters()[0]).to('cpu');
    const steps = 200;
    const started = performance.now();
    let last;
    for (let i = 0; i < steps; i++) {
      if (last !== undefined) ml.disposeGraph(last);
      last = step();
    }
    const loss = await ml.detach(last).to('cpu');
    const seconds = (performance.now() - started) / 1000;
    out[`zbmd_${name}_steps_per_sec`] = Math.round((steps / seconds) * 10) / 10;
    out[`zbmd_${name}_final_loss`] = ml.item(loss);
  } catch (error) {
    out[`zbmd_${name}_error`] = String(error?.message ?? error).split('\n')[0];
  }
}
await stepsPerSecond('mlp512_b128', mlp, 128);
await stepsPerSecond('cnn_b64', cnn, 64);
writeFileSync(process.argv[2], `${JSON.stringify(out, null, 2)}\n`);
device.destroy?.();
JAVASCRIPT
}

# --- zbmd train (the supervised run) on the device ------------------------------------------
train_cli() {
  local data
  data=$(node --input-type=module -e "const d = await import('$ROOT/dist/src/ml/data/index.js'); process.stdout.write(d.TINY_DATASET_DIR);")
  node bin/zbmd.js train --device "${ZBMD_CHECK_DEVICE:-cuda:0}" --model cnn --batch-size 64 --max-steps 30 \
    --data "$data" --json >"$OUT/train-cli.json"
}

# --- PyTorch eager training on the same GPU ------------------------------------------------
torch_train() {
  "$PYTHON" - "$OUT/torch-train.json" <<'PY'
import json, sys, time
try:
    import torch
except ImportError as error:
    json.dump({"error": f"no torch: {error}"}, open(sys.argv[1], "w"))
    raise SystemExit(1)
from torch import nn  # noqa: E402

out = {}
if not torch.cuda.is_available():
    out["error"] = "torch.cuda.is_available() is False"
else:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    def mlp():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    def cnn():
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    for name, make, batch in (("mlp512_b128", mlp, 128), ("cnn_b64", cnn, 64)):
        torch.manual_seed(1)
        model = make().cuda()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = (torch.arange(batch * 784, device="cuda", dtype=torch.float32) % 255 / 255).reshape(batch, 1, 28, 28)
        y = torch.arange(batch, device="cuda") % 10
        loss_function = nn.CrossEntropyLoss()
        def step():
            loss = loss_function(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss
        for _ in range(20):
            step()
        torch.cuda.synchronize()
        steps = 200
        started = time.perf_counter()
        for _ in range(steps):
            loss = step()
        final = loss.item()
        seconds = time.perf_counter() - started
        out[f"torch_{name}_steps_per_sec"] = round(steps / seconds, 1)
        out[f"torch_{name}_final_loss"] = final
json.dump(out, open(sys.argv[1], "w"), indent=2)
PY
}

# --- summary -------------------------------------------------------------------------------
summary() {
  node --input-type=module - "$OUT" <<'JAVASCRIPT'
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const folder = process.argv[2];
const read = (name) => {
  const path = `${folder}/${name}`;
  if (!existsSync(path)) return {};
  try { return JSON.parse(readFileSync(path, 'utf8')); } catch (error) { return { unreadable: String(error.message) }; }
};
const steps = readFileSync(`${folder}/steps.tsv`, 'utf8').trim().split('\n').filter(Boolean).map((line) => {
  const [name, status, seconds] = line.split('\t');
  return { name, status: Number(status), seconds: Number(seconds), ok: status === '0' };
});
const bench = read('bench-gpu.json');
const torchMatmul = read('torch-matmul.json');
const zbmd = read('zbmd-train.json');
const torch = read('torch-train.json');
const tests = read('cuda-tests.json');
const trainCli = read('train-cli.json');
const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? Math.round((a / b) * 1000) / 1000 : null);
const summary = {
  steps,
  cuda_tests: { passed: tests.numPassedTests ?? null, failed: tests.numFailedTests ?? null, skipped: tests.numPendingTests ?? null },
  matmul_f32_vs_torch: ratio(bench.cuda_matmul_gflops_f32, torchMatmul.torch_matmul_gflops_f32),
  matmul_bf16_vs_torch: ratio(bench.cuda_matmul_gflops_bf16, torchMatmul.torch_matmul_gflops_bf16),
  matmul_bf16_target: 0.9,
  mlp_steps_vs_torch_eager: ratio(zbmd.zbmd_mlp512_b128_steps_per_sec, torch.torch_mlp512_b128_steps_per_sec),
  cnn_steps_vs_torch_eager: ratio(zbmd.zbmd_cnn_b64_steps_per_sec, torch.torch_cnn_b64_steps_per_sec),
  training_target: 1.0,
  train_cli_tensor_backend: trainCli.tensor_backend ?? null,
  train_cli_steps_per_sec: trainCli.steps_per_sec ?? null,
  launch_overhead_us: bench.cuda_launch_overhead_us ?? null,
  launch_overhead_target_us: 10,
  errors: Object.fromEntries(
    Object.entries({ 'zbmd-train': zbmd, 'torch-train': torch, 'torch-matmul': torchMatmul }).flatMap(([file, figures]) =>
      Object.entries(figures).filter(([key]) => key.endsWith('error')).map(([key, value]) => [`${file}.${key}`, value]),
    ),
  ),
};
writeFileSync(`${folder}/summary.json`, `${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
JAVASCRIPT
}

export OUT PYTHON
export ROOT
export -f environment build cuda_tests bench_gpu torch_matmul zbmd_train train_cli torch_train

# The limits add up to 500 s (each a ceiling, most steps end well before), under 8 minutes.
run_step env 20 environment
run_step build 60 build
run_step cuda-tests 100 cuda_tests
run_step bench-gpu 150 bench_gpu
run_step torch-matmul 30 torch_matmul
run_step zbmd-train 50 zbmd_train
run_step train-cli 40 train_cli
run_step torch-train 50 torch_train
summary
