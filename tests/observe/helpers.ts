import { Writable } from 'node:stream';
import {
  ActorSystem,
  castTo,
  type GenServer,
  type Pid,
  reply,
  startGenServer,
} from '../../src/actor/index.js';
import { onSupervisionEvent, type SupervisionEvent, startSupervisor } from '../../src/supervision/index.js';

/** A counter that crashes on the cast 'crash' (as a bug would). */
export const Counter: GenServer<number, number> = {
  init: (start) => start,
  handleCast(request: 'crash' | { add: number }, count) {
    if (request === 'crash') throw new Error('counter: asked to crash');
    return count + request.add;
  },
  handleCall: (_request: 'get', _from, count) => reply(count, count),
};

export interface Fixture {
  readonly system: ActorSystem;
  readonly supervisor: Pid;
  /** Resolves with the next supervision event of `kind`. */
  next(kind: SupervisionEvent['kind']): Promise<SupervisionEvent>;
  /** Crashes the counter child and resolves once its supervisor restarted it. */
  crashCounter(): Promise<SupervisionEvent>;
}

/** A one_for_one supervisor over a `counter` (GenServer) and an `idle` child. */
export async function supervisedFixture(nodeName = 'zbmd@test'): Promise<Fixture> {
  const system = new ActorSystem({ nodeName, onCrash: () => {} });
  const supervisor = await startSupervisor(system, {
    strategy: 'one_for_one',
    intensity: 100,
    periodMs: 60_000,
    children: [
      { id: 'counter', start: (ctx) => startGenServer(ctx, Counter, 0, { link: true, name: 'counter' }) },
      { id: 'idle', start: (ctx) => startGenServer(ctx, Counter, 100, { link: true }) },
    ],
  });
  const next = (kind: SupervisionEvent['kind']): Promise<SupervisionEvent> =>
    new Promise((resolve) => {
      const stop = onSupervisionEvent(system, (event) => {
        if (event.kind !== kind) return;
        stop();
        resolve(event);
      });
    });
  return {
    system,
    supervisor,
    next,
    crashCounter: () => {
      const restarted = next('child_restarted');
      castTo(system, 'counter', 'crash');
      return restarted;
    },
  };
}

/** A writable that keeps what was written, line by line. */
export class LineSink extends Writable {
  readonly lines: string[] = [];
  private pending = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.pending += chunk.toString('utf8');
    const parts = this.pending.split('\n');
    this.pending = parts.pop() ?? '';
    this.lines.push(...parts);
    done();
  }
}
