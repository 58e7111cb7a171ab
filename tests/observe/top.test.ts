import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ControlClient,
  ControlSocketError,
  renderTopFrame,
  SystemObserver,
  startControlServer,
} from '../../src/observe/index.js';
import { supervisedFixture } from './helpers.js';

const CLI = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/src/observe/top.js', import.meta.url));

let directory: string;
const cleanups: Array<() => unknown> = [];
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-top-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(directory, { recursive: true, force: true });
});

async function observedProgram() {
  const fixture = await supervisedFixture('zbmd@top');
  const observer = new SystemObserver(fixture.system, { metrics: false });
  const control = await startControlServer(() => observer.snapshot(), join(directory, 'control.sock'));
  cleanups.push(
    () => fixture.system.shutdown(),
    () => observer.stop(),
    () => control.close(),
  );
  return { fixture, observer, control };
}

/** Collects a child's stdout; `waitFor` resolves once the text so far matches. */
function output(child: ChildProcess) {
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: (text: string) => void }> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    for (const waiter of [...waiters])
      if (waiter.pattern.test(text)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(text);
      }
  });
  return {
    waitFor: (pattern: RegExp) =>
      new Promise<string>((resolve) => {
        if (pattern.test(text)) resolve(text);
        else waiters.push({ pattern, resolve });
      }),
    clear: () => {
      text = '';
    },
  };
}

describe('the control socket', () => {
  it('answers a snapshot of the running system', async () => {
    const { control, fixture } = await observedProgram();
    const client = new ControlClient(control.path);
    cleanups.push(() => client.close());
    const snapshot = await client.snapshot();
    expect(snapshot.node).toBe('zbmd@top');
    expect(snapshot.tree).toHaveLength(1);
    expect(snapshot.tree[0].pid).toBe(String(fixture.supervisor));
    expect(snapshot.tree[0].children.map((child) => child.id)).toEqual(['counter', 'idle']);
    expect(snapshot.nodes).toEqual([]);
  });

  it('a missing socket is a ControlSocketError naming the path', async () => {
    const client = new ControlClient(join(directory, 'none.sock'));
    const error = await client.snapshot().catch((caught: unknown) => caught);
    expect(ControlSocketError.is(error)).toBe(true);
    expect((error as Error).message).toMatch(/none\.sock: cannot connect/);
  });
});

describe('zbmd top', () => {
  it('draws processes by reductions or mailbox, the tree with restart counts, and nodes', async () => {
    const { fixture, observer } = await observedProgram();
    await fixture.crashCounter();
    const frame = renderTopFrame(observer.snapshot(), { sort: 'reductions', columns: 200 });
    expect(frame).toMatch(/^zbmd top - zbmd@top/);
    expect(frame).toContain('PROCESSES (by reductions)');
    expect(frame).toMatch(
      /SUPERVISION TREE\n {2}root <0\.1\.0> supervisor one_for_one\n {2}├── counter <[\d.]+> worker {2}restarts 1\n {2}└── idle <[\d.]+> worker/,
    );
    expect(frame).toContain('NODES\n  zbmd@top (this node; no cluster)');
    const byMailbox = renderTopFrame(observer.snapshot(), { sort: 'mailbox' });
    expect(byMailbox).toContain('PROCESSES (by mailbox length)');
  });

  it.skipIf(!existsSync(BUILT))(
    'attaches to a running program, shows a frame, follows a restart, quits on q',
    async () => {
      const { control, fixture } = await observedProgram();
      const child = spawn(process.execPath, [CLI, 'top', '--attach', control.path, '--interval', '100'], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      cleanups.push(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      const screen = output(child);
      const first = await screen.waitFor(/NODES[\s\S]*zbmd@top/);
      expect(first).toContain('\x1b[H\x1b[2J'); // each frame redraws the screen
      expect(first).toMatch(/├── counter <[\d.]+> worker/);
      expect(first).not.toMatch(/restarts 1/);
      screen.clear();
      await fixture.crashCounter();
      await screen.waitFor(/counter <[\d.]+> worker {2}restarts 1/);
      child.stdin!.write('q');
      expect(await exited).toBe(0);
    },
  );
});
