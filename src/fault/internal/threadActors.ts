/**
 * The processes of the `threads` scenario (src/fault/threadScenarios.ts), spawned on simulated
 * scheduler threads by module URL, as a real node spawns them on its worker threads. Every
 * simulated thread runs in the same JS realm, so they report what they saw to the run's probe
 * (`probeFor`), looked up by the probe id each is spawned with: the oracle reads the probes, the
 * processes never read them back. Payloads the network tap must recognise carry a `tap` field.
 */

import { CallRequest, type Context } from '../../actor/ActorSystem.js';
import type { CallFrom } from '../../actor/Call.js';
import { DownMessage, ExitMessage, type ExitReason } from '../../actor/ExitReason.js';
import type { Pid } from '../../actor/Pid.js';

/** One call the counter server handled. */
export interface Handled {
  readonly at: number;
  readonly thread: number;
  readonly count: number;
}

/** An EXIT or DOWN a watcher received. */
export interface WatcherSignal {
  readonly watcher: string;
  readonly kind: 'exit' | 'down';
  /** The partner it came from (by thread and process number), or the pid's text if none. */
  readonly partner: string;
  readonly reason: ExitReason;
  readonly at: number;
}

/** What the processes of one run report. */
export class ThreadProbe {
  /** Call number -> every time a counter server handled it (one at most, by the model). */
  readonly handled = new Map<number, Handled[]>();
  readonly signals: WatcherSignal[] = [];
  /** `${from}>${to}` -> the stream numbers sent, in order. */
  readonly sent = new Map<string, number[]>();
  /** `${from}>${to}` -> the stream numbers received, in order. */
  readonly received = new Map<string, number[]>();
  /** Per thread: the counter servers' pids as that thread got them in a message (by server thread). */
  readonly serverViews = new Map<number, Pid[]>();
  /** Anything a process got that the scenario never sends it. */
  readonly unexpected: string[] = [];

  constructor(readonly now: () => number) {}

  push<T>(map: Map<string, T[]>, key: string, value: T): void {
    const list = map.get(key);
    if (list === undefined) map.set(key, [value]);
    else list.push(value);
  }
}

/** This module's URL: what the scenario spawns these classes by (`.ts` in a source checkout). */
export const THREAD_ACTORS_MODULE = import.meta.url;

const probes = new Map<number, ThreadProbe>();
let nextProbe = 1;

/** Opens a probe for one run; `closeProbe` forgets it. */
export function openProbe(now: () => number): { id: number; probe: ThreadProbe } {
  const id = nextProbe++;
  const probe = new ThreadProbe(now);
  probes.set(id, probe);
  return { id, probe };
}

export function closeProbe(id: number): void {
  probes.delete(id);
}

function probeFor(id: number): ThreadProbe {
  const probe = probes.get(id);
  if (probe === undefined) throw new Error(`threads scenario: no probe ${id} (a scenario bug)`);
  return probe;
}

/** Nothing: spawned once on each simulated thread at boot so that this module is loaded there. */
export class Idle {
  handle(): void {}
}

/** A counter server: answers `{ tap: 'call', call }` with `{ tap: 'reply', call, count }`. */
export class CounterServer {
  private count = 0;
  private readonly probe: ThreadProbe;

  constructor(probeId: number) {
    this.probe = probeFor(probeId);
  }

  handle(message: unknown, ctx: Context): void {
    const request =
      message instanceof CallRequest ? (message.request as { tap?: string; call?: number }) : undefined;
    if (request?.tap !== 'call' || typeof request.call !== 'number') {
      this.probe.unexpected.push(`counter on thread ${ctx.system.thread} got ${describeMessage(message)}`);
      return;
    }
    this.count++;
    const handled = { at: this.probe.now(), thread: ctx.system.thread, count: this.count };
    const list = this.probe.handled.get(request.call);
    if (list === undefined) this.probe.handled.set(request.call, [handled]);
    else list.push(handled);
    ctx.system.reply((message as CallRequest).from as CallFrom, {
      tap: 'reply',
      call: request.call,
      count: this.count,
    });
  }
}

/**
 * Traps exits. Told `{ setup, servers }`, it links to and monitors its partners (as each entry
 * says) and keeps the servers' pids as its thread got them (for the scenario's calls); told
 * `{ emit, count }`, it sends the next `count` numbers of its stream to one of them in one turn;
 * it logs every EXIT, DOWN and stream message it gets.
 */
export class Watcher {
  private readonly probe: ThreadProbe;
  private readonly partners = new Map<string, Pid>();
  private readonly next = new Map<string, number>();

  constructor(
    probeId: number,
    private readonly name: string,
  ) {
    this.probe = probeFor(probeId);
  }

  handle(message: unknown, ctx: Context): void {
    const probe = this.probe;
    if (message instanceof ExitMessage || message instanceof DownMessage) {
      const pid = message instanceof ExitMessage ? message.from : message.pid;
      probe.signals.push({
        watcher: this.name,
        kind: message instanceof ExitMessage ? 'exit' : 'down',
        partner: this.partnerOf(pid) ?? String(pid),
        reason: message.reason,
        at: probe.now(),
      });
      return;
    }
    const body = message as {
      setup?: { name: string; pid: Pid; link: boolean; monitor: boolean }[];
      servers?: Pid[];
      emit?: string;
      count?: number;
      tap?: string;
      from?: string;
      n?: number;
    };
    if (Array.isArray(body?.setup)) {
      if (Array.isArray(body.servers)) probe.serverViews.set(ctx.system.thread, body.servers);
      for (const partner of body.setup) {
        this.partners.set(partner.name, partner.pid);
        if (partner.link) ctx.link(partner.pid);
        if (partner.monitor) ctx.monitor(partner.pid);
      }
    } else if (typeof body?.emit === 'string' && this.partners.has(body.emit)) {
      // a burst in one turn: its messages leave in one batch
      for (let burst = 0; burst < Math.min(body.count ?? 1, 16); burst++) {
        const n = this.next.get(body.emit) ?? 0;
        this.next.set(body.emit, n + 1);
        probe.push(probe.sent, `${this.name}>${body.emit}`, n);
        ctx.send(this.partners.get(body.emit)!, { tap: 'stream', from: this.name, to: body.emit, n });
      }
    } else if (body?.tap === 'stream' && typeof body.from === 'string' && typeof body.n === 'number') {
      probe.push(probe.received, `${body.from}>${this.name}`, body.n);
    } else {
      probe.unexpected.push(`watcher ${this.name} got ${describeMessage(message)}`);
    }
  }

  private partnerOf(pid: Pid): string | undefined {
    for (const [name, partner] of this.partners)
      if (partner.thread === pid.thread && partner.id === pid.id) return name;
    return undefined;
  }
}

/** A supervised child: answers `{ tap: 'ping' }` calls with its id and thread; `{ exit }` stops it. */
export class Child {
  private readonly probe: ThreadProbe;

  constructor(
    probeId: number,
    private readonly id: string,
  ) {
    this.probe = probeFor(probeId);
  }

  handle(message: unknown, ctx: Context): void {
    if (message instanceof CallRequest && (message.request as { tap?: string })?.tap === 'ping') {
      ctx.system.reply(message.from, { tap: 'pong', id: this.id, thread: ctx.system.thread });
      return;
    }
    if (typeof message === 'object' && message !== null && 'exit' in message) {
      ctx.stop((message as { exit: ExitReason }).exit);
      return;
    }
    this.probe.unexpected.push(`child ${this.id} got ${describeMessage(message)}`);
  }
}

function describeMessage(message: unknown): string {
  try {
    return JSON.stringify(message) ?? String(message);
  } catch {
    return String(message);
  }
}
