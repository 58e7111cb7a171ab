import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { observeTraining } from '../../src/cli/observe.js';
import { trainCommand } from '../../src/cli/train.js';
import { CpuBackend } from '../../src/gpu/backends/CpuBackend.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { train } from '../../src/ml/training/index.js';
import { ControlClient, type ObserverSnapshot } from '../../src/observe/index.js';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-observe-train-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('zbmd train with --metrics-port, --control and --plot', () => {
  it('serves live training metrics and snapshots while it runs, and writes the curves at the end', async () => {
    const notices: string[] = [];
    const plot = join(directory, 'curves.svg');
    const observation = await observeTraining(
      { metricsPort: 0, control: join(directory, 'control.sock'), plot, logLevel: 'silent' },
      (line) => notices.push(line),
    );
    expect(notices[0]).toBe(`zbmd: metrics on ${observation.metrics!.url}/metrics`);
    expect(notices[1]).toMatch(/^zbmd: control socket .*control\.sock \(zbmd top --attach /);
    const client = new ControlClient(observation.control!.path);
    let during: Promise<[string, ObserverSnapshot]> | undefined;
    const result = await train({
      ...observation.hooks,
      onStep(report) {
        observation.hooks.onStep(report);
        if (report.step === 150)
          during = Promise.all([
            fetch(`${observation.metrics!.url}/metrics`).then((response) => response.text()),
            client.snapshot(),
          ]);
      },
      model: 'mlp',
      data: TINY_DATASET_DIR,
      batchSize: 8,
      maxSteps: 300,
      seed: 3,
      faults: 'actorCrashRate=0.04,seed=3',
      devices: [new CpuBackend(0).info()],
    }).finally(() => observation.finish());
    client.close();
    const [body, snapshot] = await during!;
    expect(result.recoveries.length).toBeGreaterThan(2);

    const steps = Number(body.match(/^zbmd_training_steps_total\{node="zbmd@local"\} (\d+)$/m)?.[1]);
    expect(steps).toBeGreaterThanOrEqual(150);
    expect(steps).toBeLessThanOrEqual(300);
    expect(body).toMatch(/^zbmd_training_loss\{node="zbmd@local"\} \d/m);
    expect(body).toMatch(/^zbmd_training_recoveries_total\{node="zbmd@local",cause="\w+_crash"\} \d+$/m);
    expect(body).toMatch(
      /^zbmd_supervisor_restarts_total\{node="zbmd@local",supervisor="<0\.1\.0>"\} [1-9]/m,
    );
    expect(body).toMatch(/^zbmd_device_health\{node="zbmd@local",device="cpu:0"\} 0$/m);

    expect(snapshot.tree.map((root) => root.strategy)).toEqual(['rest_for_one']);
    expect(snapshot.tree[0].children.map((child) => child.id)).toEqual([
      'model',
      'optimizer',
      'dataloader',
      'checkpoint',
      'metrics',
    ]);
    expect(snapshot.training!.loss.length).toBeGreaterThanOrEqual(150);
    expect(snapshot.devices).toMatchObject([{ id: 'cpu:0', health: 'healthy', current: true }]);

    const svg = await readFile(plot, 'utf8');
    expect(svg.match(/class="recovery"/g)).toHaveLength(2 * result.recoveries.length);
    expect(notices.at(-1)).toBe(`zbmd: curves written to ${plot}`);
    // the servers are closed with the run
    await expect(fetch(`${observation.metrics!.url}/metrics`)).rejects.toThrow();
  });

  it('a bad --log-level stops zbmd train before it starts', async () => {
    await expect(
      trainCommand(
        {
          model: 'mlp',
          optimizer: 'adam',
          epochs: 1,
          batchSize: 8,
          seed: 1,
          checkpointInterval: 100,
          resume: false,
          json: true,
          data: TINY_DATASET_DIR,
          maxSteps: 5,
          logLevel: 'loud',
        },
        () => {},
      ),
    ).rejects.toThrow(/--log-level: expected a log level/);
  });
});

describe('the observe options of zbmd train', () => {
  async function parsed(...args: string[]): Promise<Record<string, unknown>> {
    const { Command } = await import('commander');
    const { registerTrainCommand } = await import('../../src/cli/train.js');
    const root = new Command('zbmd').exitOverride().configureOutput({ writeErr: () => undefined });
    registerTrainCommand(root);
    const command = root.commands[0];
    command.exitOverride().configureOutput({ writeErr: () => undefined });
    command.action(() => {}); // parse only
    await root.parseAsync(['node', 'zbmd', 'train', ...args]);
    return command.opts();
  }

  it('take ports, a bare --view and --control, a level and a plot path', async () => {
    expect(
      await parsed('--metrics-port', '9464', '--view', '--control', '--log-level', 'info', '--plot', 'c.svg'),
    ).toMatchObject({
      metricsPort: 9464,
      view: true,
      control: true,
      logLevel: 'info',
      plot: 'c.svg',
    });
    expect(await parsed('--view', '8080', '--control', '/tmp/x.sock')).toMatchObject({
      view: 8080,
      control: '/tmp/x.sock',
    });
  });

  it('reject a port out of range, naming the option', async () => {
    await expect(parsed('--metrics-port', '70000')).rejects.toThrow(
      /--metrics-port: expected a port in \[0, 65535\]/,
    );
    await expect(parsed('--view', 'abc')).rejects.toThrow(/--view: expected a port/);
  });
});
