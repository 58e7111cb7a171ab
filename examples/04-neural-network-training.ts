/**
 * Example 4 (design book ch. 10): a 784-128-10 network trained under a training supervisor
 * (model, optimizer, data loader, checkpoint and metrics actors) with Adam at 1e-3, through
 * injected actor crashes. Data: Fashion-MNIST when Debian's `dataset-fashion-mnist` is
 * installed, else the small set shipped in data/tiny.
 * Run: `node dist/examples/04-neural-network-training.js`.
 */
import { type TrainingConfig, type TrainingResult, train } from 'zbmd/ml';

export async function main(
  write: (line: string) => void = console.log,
  overrides: Partial<TrainingConfig> = {},
): Promise<TrainingResult> {
  const result = await train({
    model: 'mlp',
    optimizer: 'adam',
    learningRate: 0.001,
    epochs: 1,
    batchSize: 32,
    checkpointIntervalSteps: 100,
    faults: { actorCrashRate: 0.005, seed: 7 }, // the supervisor repairs every one of them
    ...overrides,
  });
  write('Training completed!');
  write(`Final accuracy: ${(result.finalTestAccuracy * 100).toFixed(2)}%`);
  write(`Training time: ${(result.elapsedMs / 1000).toFixed(2)}s`);
  write(`Failures recovered: ${result.recoveries.length}, lost steps: ${result.lostSteps}`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
