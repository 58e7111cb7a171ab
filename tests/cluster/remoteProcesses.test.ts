/**
 * Remote processes between zbmd nodes on a real nats-server (127.0.0.1, temp directory): two
 * actor systems in this process, each attached to its own ClusterNode (its own connection),
 * plus a node in a child process that is SIGKILLed.
 */
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actor/ActorSystem.js';
import { DownMessage, ExitMessage } from '../../src/actor/ExitReason.js';
import { isCallExit, isCallTimeout } from '../../src/actor/errors.js';
import { noreply, reply, startGenServer } from '../../src/actor/GenServer.js';
import { type Pid, Ref } from '../../src/actor/Pid.js';
import { ClusterNode } from '../../src/cluster/ClusterNode.js';
import { isAlreadyRegistered, isMessageTooLarge, isRemoteSpawnError } from '../../src/cluster/errors.js';
import { type NatsServer, startNatsServer } from '../../src/cluster/internal/natsServer.js';
import type { NodeId } from '../../src/cluster/Membership.js';
import { nodeSubject, type RemoteProcesses } from '../../src/cluster/RemoteProcesses.js';
import { type NodeProcess, spawnRemoteNode } from './helpers.js';

interface Side {
  readonly node: ClusterNode;
  readonly system: ActorSystem;
  readonly remote: RemoteProcesses;
  readonly malformed: string[];
}

let server: NatsServer;
let a: Side;
let b: Side;

function nodeUp(node: ClusterNode, name: string): Promise<NodeId> {
  const found = node.nodes().find((id) => id.name === name);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve) => {
    const stop = node.monitorNodes((event) => {
      if (event.kind === 'nodeup' && event.node.name === name) {
        stop();
        resolve(event.node);
      }
    });
  });
}

function nodeDown(node: ClusterNode, name: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = node.monitorNodes((event) => {
      if (event.kind === 'nodedown' && event.node.name === name) {
        stop();
        resolve();
      }
    });
  });
}

async function side(name: string): Promise<Side> {
  const malformed: string[] = [];
  const node = await ClusterNode.start({ name, nats: server.url, election: false });
  const system = new ActorSystem({ nodeName: name });
  const remote = node.attach(system, { onMalformed: (_subject, detail) => malformed.push(detail) });
  return { node, system, remote, malformed };
}

/** A process that keeps what it receives; `until(n)` resolves once it has `n` messages. */
/** A `{ name, node }` naming this very node: a local registered-name send. */
function toSelfName(side: Side): { name: string; node: string } {
  const sink = side.system.spawn(async (ctx) => void (await ctx.receive()));
  side.system.register('sink', sink);
  return { name: 'sink', node: side.node.self.name };
}

function collector(system: ActorSystem, trap = false) {
  const got: unknown[] = [];
  let wake: (() => void) | undefined;
  const pid = system.spawn(async (ctx) => {
    if (trap) ctx.trapExit(true);
    for (;;) {
      got.push(await ctx.receive());
      wake?.();
    }
  });
  const until = (count: number, timeoutMs = 10_000): Promise<unknown[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`got ${got.length} of ${count}: ${String(got)}`)),
        timeoutMs,
      );
      const check = (): void => {
        if (got.length < count) return;
        clearTimeout(timer);
        wake = undefined;
        resolve(got);
      };
      wake = check;
      check();
    });
  return { pid, got, until };
}

const Echo = {
  init: () => 0,
  handleCall: (request: unknown, _from: unknown, state: number) =>
    request === 'never' ? noreply(state) : reply({ echo: request }, state),
};

beforeAll(async () => {
  server = await startNatsServer();
  [a, b] = await Promise.all([side('a'), side('b')]);
  await Promise.all([nodeUp(a.node, 'b'), nodeUp(b.node, 'a')]);
}, 60_000);

afterAll(async () => {
  await a?.node.close();
  await b?.node.close();
  a?.system.shutdown();
  b?.system.shutdown();
  await server?.stop();
});

describe('remote processes over NATS', () => {
  it('a pid names its node and incarnation; send works both ways, pids and refs inside messages', async () => {
    const atA = collector(a.system);
    const atB = collector(b.system);
    const fromA = a.remote.pid(atA.pid);
    expect(fromA.node).toBe('a');
    expect(fromA.creation).toBe(a.node.self.incarnation);
    const toB = b.remote.pid(atB.pid);
    a.system.send(toB, {
      hello: 'b',
      replyTo: fromA,
      ref: new Ref('a', 7),
      bytes: new Float32Array([1.5, 2]),
    });
    const [first] = (await atB.until(1)) as [{ hello: string; replyTo: Pid; ref: Ref; bytes: Float32Array }];
    expect(first.hello).toBe('b');
    expect(first.replyTo.equals(fromA)).toBe(true);
    expect(first.ref).toBeInstanceOf(Ref);
    expect([...first.bytes]).toEqual([1.5, 2]);
    b.system.send(first.replyTo, ['back', toB]);
    const [back] = (await atA.until(1)) as [[string, Pid]];
    expect(back[0]).toBe('back');
    // B's pid came back through A: still B's process (delivered locally on B)
    expect(back[1].equals(toB)).toBe(true);
    b.system.send(back[1], 'home');
    // a pid sent home resolves to the local process itself
    a.system.send(toB, { me: toB });
    const [, home, second] = (await atB.until(3)) as [unknown, string, { me: Pid }];
    expect(home).toBe('home');
    expect(second.me).toBe(atB.pid);
  });

  it('keeps order per sender-receiver pair (3,000 messages each way from two senders)', async () => {
    const atB = collector(b.system);
    const toB = b.remote.pid(atB.pid);
    const count = 3_000;
    for (let i = 0; i < count; i++) {
      a.system.send(toB, ['root', i]);
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    a.system.spawn(async () => {
      for (let i = 0; i < count; i++) a.system.send(toB, ['proc', i]);
    });
    const got = (await atB.until(2 * count)) as [string, number][];
    for (const sender of ['root', 'proc'])
      expect(got.filter(([s]) => s === sender).map(([, i]) => i)).toEqual([...Array(count).keys()]);
  });

  it('call gets the reply; a call with no reply fails with CallTimeout; noproc for a gone server', async () => {
    const echo = b.remote.pid(await startGenServer(b.system, Echo, undefined));
    expect(await a.system.call(echo, [1, 'two'])).toEqual({ echo: [1, 'two'] });
    const fromProcess = await new Promise((resolve) =>
      a.system.spawn(async (ctx) => resolve(await ctx.call(echo, 'inside', 5_000))),
    );
    expect(fromProcess).toEqual({ echo: 'inside' });
    const timeout = await a.system.call(echo, 'never', 200).catch((error) => error);
    expect(isCallTimeout(timeout)).toBe(true);
    const gone = b.system.spawn(async () => {});
    const goneRemote = b.remote.pid(gone);
    await b.system.whenExited(gone);
    const noproc = await a.system.call(goneRemote, 'x', 2_000).catch((error) => error);
    expect(isCallExit(noproc) && noproc.reason).toBe('noproc');
  });

  it('link: a remote crash reaches a trapping linker as EXIT with the reason, and the other way round', async () => {
    const atA = collector(a.system);
    const victim = b.system.spawn(async (ctx) => {
      await ctx.receive();
      throw new Error('remote boom');
    });
    const victimRemote = b.remote.pid(victim);
    a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(victimRemote);
      ctx.send(victimRemote, 'crash now'); // after the link: same sender, same target node
      a.system.send(atA.pid, await ctx.receive());
    });
    const [exit] = (await atA.until(1)) as [ExitMessage];
    expect(exit).toBeInstanceOf(ExitMessage);
    expect(exit.from.equals(victimRemote)).toBe(true);
    expect(exit.reason).toBeInstanceOf(Error);
    expect((exit.reason as Error).message).toBe('remote boom');

    // exit/2 across nodes, and a non-trapping process on B dies with its linked peer on A
    const peerOnA = a.system.spawn(async (ctx) => {
      await ctx.receive();
    });
    const peerRemote = a.remote.pid(peerOnA);
    const follower = b.system.spawn(async (ctx) => {
      ctx.link(peerRemote);
      await ctx.receive();
    });
    const followerExit = b.system.whenExited(follower);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the link is set on A before the kill
    b.system.exit(peerRemote, 'shutdown');
    expect(await a.system.whenExited(peerOnA)).toBe('shutdown');
    expect(await followerExit).toBe('shutdown');
  });

  it('unlink: after it, the remote exit no longer arrives', async () => {
    const target = b.system.spawn(async (ctx) => {
      await ctx.receive();
      throw new Error('after unlink');
    });
    const targetRemote = b.remote.pid(target);
    const got: unknown[] = [];
    const done = new Promise<void>((resolve) =>
      a.system.spawn(async (ctx) => {
        ctx.trapExit(true);
        ctx.link(targetRemote);
        ctx.unlink(targetRemote);
        ctx.send(targetRemote, 'die');
        const ref = ctx.monitor(targetRemote);
        got.push(await ctx.receive());
        got.push(ref);
        resolve();
      }),
    );
    await done;
    expect(got[0]).toBeInstanceOf(DownMessage); // the DOWN, not an EXIT
  });

  it('monitor: DOWN with the reason; noproc for a gone process; demonitor stops the DOWN', async () => {
    const watched = b.system.spawn(async (ctx) => {
      await ctx.receive();
      ctx.exit('finished');
    });
    const watchedRemote = b.remote.pid(watched);
    const atA = collector(a.system);
    a.system.spawn(async (ctx) => {
      const ref = ctx.monitor(watchedRemote);
      ctx.send(watchedRemote, 'go');
      const down = (await ctx.receive()) as DownMessage;
      a.system.send(atA.pid, [down.ref === ref, down.pid.equals(watchedRemote), down.reason]);
      const again = ctx.monitor(watchedRemote); // gone now
      const noproc = (await ctx.receive()) as DownMessage;
      a.system.send(atA.pid, [noproc.ref === again, noproc.reason]);
    });
    expect(await atA.until(2)).toEqual([
      [true, true, 'finished'],
      [true, 'noproc'],
    ]);

    const quiet = b.system.spawn(async (ctx) => {
      await ctx.receive();
    });
    const quietRemote = b.remote.pid(quiet);
    const seen: unknown[] = [];
    await new Promise<void>((resolve) =>
      a.system.spawn(async (ctx) => {
        const ref = ctx.monitor(quietRemote);
        expect(ctx.demonitor(ref)).toBe(true);
        ctx.send(quietRemote, 'stop');
        const probe = ctx.monitor(quietRemote); // arrives after the stop: DOWN normal or noproc
        const down = (await ctx.receive()) as DownMessage;
        seen.push(down.ref === probe, await ctx.receive(undefined, 100));
        resolve();
      }),
    );
    expect(seen).toEqual([true, undefined]);
  });

  it('nodedown: links fire noconnection, monitors DOWN noconnection, calls in flight CallExit noconnection, sends dropped', async () => {
    const c = await side('c');
    await Promise.all([nodeUp(a.node, 'c'), nodeUp(c.node, 'a')]);
    const echo = c.remote.pid(await startGenServer(c.system, Echo, undefined));
    expect(await a.system.call(echo, 'up')).toEqual({ echo: 'up' });
    const atA = collector(a.system, true);
    const watcher = a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(echo);
      ctx.monitor(echo);
      a.system.send(atA.pid, 'set');
      for (;;) a.system.send(atA.pid, await ctx.receive());
    });
    expect(watcher).toBeDefined();
    await atA.until(1);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the link and monitor reach c
    const inFlight = a.system.call(echo, 'never', 30_000).catch((error) => error);
    const down = nodeDown(a.node, 'c');
    await c.node.close();
    c.system.shutdown();
    await down;
    const failed = await inFlight;
    expect(isCallExit(failed) && failed.reason).toBe('noconnection');
    const got = await atA.until(3);
    const exit = got.find((m) => m instanceof ExitMessage) as ExitMessage;
    const monitorDown = got.find((m) => m instanceof DownMessage) as DownMessage;
    expect(exit.reason).toBe('noconnection');
    expect(exit.from.equals(echo)).toBe(true);
    expect(monitorDown.reason).toBe('noconnection');
    // after nodedown: sends dropped, link -> noconnection, monitor -> DOWN noconnection, call fails at once
    const dropped = a.system.stats().messagesDropped;
    a.system.send(echo, 'lost');
    expect(a.system.stats().messagesDropped).toBe(dropped + 1);
    const late = await a.system.call(echo, 'x', 5_000).catch((error) => error);
    expect(isCallExit(late) && late.reason).toBe('noconnection');
  });

  it('a message over max_payload is refused with MessageTooLarge at the sender; one under it arrives', async () => {
    const atB = collector(b.system);
    const toB = b.remote.pid(atB.pid);
    const limit = a.remote.maxMessageBytes;
    expect(a.remote.maxPayloadBytes).toBe(1024 * 1024);
    let refused: unknown;
    try {
      a.system.send(toB, new Uint8Array(limit + 1));
    } catch (error) {
      refused = error;
    }
    expect(isMessageTooLarge(refused)).toBe(true);
    expect(refused).toMatchObject({ limitBytes: limit });
    const big = await a.system
      .call(b.remote.pid(await startGenServer(b.system, Echo, undefined)), new Uint8Array(limit + 1), 1_000)
      .catch((error) => error);
    expect(isMessageTooLarge(big)).toBe(true);
    a.system.send(toB, new Uint8Array(limit - 64).fill(7));
    a.system.send(toB, 'after');
    const got = (await atB.until(2)) as [Uint8Array, string];
    expect(got[0].length).toBe(limit - 64);
    expect(got[0][100]).toBe(7);
    expect(got[1]).toBe('after');
  });

  it('malformed frames on the node subject are dropped with a log line; the node keeps working', async () => {
    const atB = collector(b.system);
    const toB = b.remote.pid(atB.pid);
    const raw = await connect({ servers: server.url });
    const subject = nodeSubject('zbmd', b.node.self);
    raw.publish(subject, new TextEncoder().encode('not msgpack at all \u00ff'));
    raw.publish(subject, new Uint8Array([0x93, 1, 2, 3])); // msgpack, but no zbmd header
    raw.publish(subject, new Uint8Array([0xc1])); // a byte msgpack never uses
    await raw.flush();
    await raw.close();
    a.system.send(toB, 'still here');
    expect(await atB.until(1)).toEqual(['still here']);
    await expect.poll(() => b.malformed.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
  });

  it('spawn on another node by module URL and export; spawnLink links from the start; refusals are typed', async () => {
    const code = { module: new URL('./fixtures/nodeActors.ts', import.meta.url).href, export: 'Echo' };
    const atA = collector(a.system, true);
    const echo = await a.remote.spawn('b', code, ['tagged']);
    expect(echo.node).toBe('b');
    expect(echo.creation).toBe(b.node.self.incarnation);
    a.system.send(echo, { from: a.remote.pid(atA.pid), body: 'hi' });
    expect(await atA.until(1)).toEqual([{ body: 'hi', node: 'b', tag: 'tagged' }]);

    // spawnLink: the new process crashes, the linker (trapping) gets its EXIT
    const linked = await a.remote.spawnLink(atA.pid, 'b', code);
    a.system.send(linked, { from: a.remote.pid(atA.pid), body: 'crash' });
    const [, exit] = (await atA.until(2)) as [unknown, ExitMessage];
    expect(exit).toBeInstanceOf(ExitMessage);
    expect(exit.from.equals(linked)).toBe(true);
    expect((exit.reason as Error).message).toBe('asked to crash');

    // the other way: the linker dies, the spawned process (not trapping) dies with it
    const parent = a.system.spawn(async (ctx) => {
      await ctx.receive();
      throw new Error('parent gone');
    });
    const child = await a.remote.spawnLink(parent, 'b', code);
    const childOnB = b.system; // its pid on b, as b sees it: the local process
    const watcher = collector(b.system);
    b.system.spawn(async (ctx) => {
      ctx.monitor(child);
      childOnB.send(watcher.pid, await ctx.receive());
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    a.system.send(parent, 'go');
    const [down] = (await watcher.until(1)) as [DownMessage];
    expect((down.reason as Error).message).toBe('parent gone');

    // refusals: a node that is not up, a bad code reference
    const notUp = await a.remote.spawn('nobody', code).catch((error) => error);
    expect(isRemoteSpawnError(notUp) && notUp.reason).toBe('noconnection');
    const badExport = await a.remote.spawn('b', { module: code.module, export: 'Missing' }).catch((e) => e);
    expect(isRemoteSpawnError(badExport) || badExport instanceof Error).toBe(true);
  });

  it('send({ name, node }) reaches a locally registered name on another node; an unknown one is dropped', async () => {
    const atB = collector(b.system);
    b.system.register('inbox', atB.pid);
    a.system.send({ name: 'inbox', node: 'b' }, 'by name');
    a.system.spawn(async (ctx) => ctx.send({ name: 'inbox', node: 'b' }, 'from a process'));
    expect(await atB.until(2)).toEqual(['by name', 'from a process']);
    const dropped = b.system.stats().messagesDropped;
    a.system.send({ name: 'nobody-here', node: 'b' }, 'lost');
    a.system.send({ name: 'inbox', node: 'not-a-node' }, 'lost');
    a.system.send(toSelfName(a), 'local');
    a.system.send({ name: 'inbox', node: 'b' }, 'after');
    expect(await atB.until(3)).toEqual(['by name', 'from a process', 'after']);
    expect(b.system.stats().messagesDropped).toBe(dropped);
    expect(() => new ActorSystem({ nodeName: 'z' }).send({ name: 'x', node: 'y' }, 1)).toThrow(
      /not attached/,
    );
  });

  it('global names hold pids: whereisGlobal gives a pid for send, link and monitor; the name goes with its process', async () => {
    const atA = collector(a.system, true);
    const holder = collector(b.system);
    await b.remote.registerGlobal('w13c-worker', holder.pid);
    const again = await a.remote
      .registerGlobal(
        'w13c-worker',
        a.system.spawn(async (ctx) => void (await ctx.receive())),
      )
      .catch((error) => error);
    expect(isAlreadyRegistered(again)).toBe(true);
    const found = await a.remote.whereisGlobal('w13c-worker');
    expect(found?.node).toBe('b');
    a.system.send(found!, 'work');
    expect(await holder.until(1)).toEqual(['work']);
    // on its own node it is the local pid
    expect(await b.remote.whereisGlobal('w13c-worker')).toBe(holder.pid);
    a.system.spawn(async (ctx) => {
      ctx.monitor(found!);
      a.system.send(atA.pid, await ctx.receive());
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    b.system.exit(holder.pid, 'done');
    const [down] = (await atA.until(1)) as [DownMessage];
    expect(down.reason).toBe('done');
    await expect.poll(() => a.remote.whereisGlobal('w13c-worker'), { timeout: 5_000 }).toBeUndefined();
  });

  it('refuses a system whose nodeName is not the node name, and a second attach', () => {
    expect(() => a.node.attach(new ActorSystem({ nodeName: 'other' }))).toThrow(/nodeName/);
    expect(() => a.node.attach(a.system)).toThrow(/attached/);
  });
});

describe('a remote node process SIGKILLed', () => {
  let child: NodeProcess | undefined;
  afterAll(async () => {
    child?.kill('SIGKILL');
    await child?.exited;
  });

  it('links and monitors fire noconnection within 2 s; a call in flight fails', async () => {
    child = spawnRemoteNode([server.url], 'k');
    const started = await child.waitFor((line) => line.kind === 'started', 30_000);
    const self = started.self as NodeId;
    await nodeUp(a.node, 'k');
    const echo = a.remote.remotePid(self, started.pid.id, started.pid.serial);
    expect(await a.system.call(echo, 'hi', 5_000)).toEqual({ echo: 'hi' });
    const atA = collector(a.system, true);
    a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(echo);
      ctx.monitor(echo);
      a.system.send(atA.pid, 'set');
      for (;;) a.system.send(atA.pid, await ctx.receive());
    });
    await atA.until(1);
    expect(await a.system.call(echo, 'still', 5_000)).toEqual({ echo: 'still' }); // link and monitor arrived before this
    const inFlight = a.system.call(echo, 'never', 30_000).catch((error) => error);
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const got = await atA.until(3, 2_000);
    const elapsed = Date.now() - killedAt;
    expect(elapsed).toBeLessThan(2_000);
    expect((got.find((m) => m instanceof ExitMessage) as ExitMessage).reason).toBe('noconnection');
    expect((got.find((m) => m instanceof DownMessage) as DownMessage).reason).toBe('noconnection');
    const failed = await inFlight;
    expect(isCallExit(failed) && failed.reason).toBe('noconnection');
  });
});
