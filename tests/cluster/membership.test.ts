/** Membership on the deterministic network: nodeup, nodedown by phi, leave, restart, quarantine. */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { type Clock, SimulatedClock } from '../../src/actor/Clock.js';
import { isClusterError } from '../../src/cluster/errors.js';
import { Membership, type NodeEvent, type NodeId } from '../../src/cluster/Membership.js';
import { SimulatedNetwork } from '../../src/cluster/SimulatedNetwork.js';

function setup(names: readonly string[]) {
  const clock = new SimulatedClock();
  const network = new SimulatedNetwork({ clock, seed: 3, delayMs: { min: 1, max: 5 } });
  const events = new Map<string, string[]>();
  const malformed: string[] = [];
  const members = new Map<string, Membership>();
  const join = (name: string, incarnation = 1): Membership => {
    const membership = new Membership({
      transport: network.transport(name),
      cluster: 'test',
      self: { name, incarnation },
      clock,
      onMalformed: (subject, detail) => malformed.push(`${subject}: ${detail}`),
    });
    const log = events.get(name) ?? [];
    events.set(name, log);
    membership.monitor((event: NodeEvent) =>
      log.push(
        event.kind === 'quarantined'
          ? `quarantined by ${event.by.name}`
          : `${event.kind} ${event.node.name}#${event.node.incarnation}${event.kind === 'nodedown' ? ` ${event.reason}` : ''}`,
      ),
    );
    members.set(name, membership);
    membership.start();
    return membership;
  };
  for (const name of names) join(name);
  return { clock, network, events, members, malformed, join };
}

const names = (nodes: NodeId[]): string[] => nodes.map((node) => node.name);

describe('Membership', () => {
  it('sees every other node come up', () => {
    const { clock, members, events } = setup(['a', 'b', 'c']);
    clock.advance(300);
    expect(names(members.get('a')!.nodes())).toEqual(['b', 'c']);
    expect(events.get('c')).toEqual(['nodeup a#1', 'nodeup b#1']);
  });

  it('declares a killed node down by phi within a second of its last heartbeat (100 ms interval)', () => {
    const { clock, network, members, events } = setup(['a', 'b']);
    clock.advance(5000); // a history of regular heartbeats
    network.kill('b');
    const killedAt = clock.now();
    while (members.get('a')!.nodes().length > 0) clock.advance(1);
    const detectedMs = clock.now() - killedAt;
    expect(detectedMs).toBeGreaterThan(300); // not on one late heartbeat
    expect(detectedMs).toBeLessThan(1000);
    expect(events.get('a')).toEqual(['nodeup b#1', 'nodedown b#1 heartbeat_timeout']);
  });

  it('a node that leaves is down at once, with reason left', () => {
    const { clock, members, events } = setup(['a', 'b']);
    clock.advance(500);
    members.get('b')!.stop();
    clock.advance(10);
    expect(events.get('a')).toEqual(['nodeup b#1', 'nodedown b#1 left']);
  });

  it('a new incarnation of a name ends the old one first', () => {
    const { clock, network, members, events, join } = setup(['a', 'b']);
    clock.advance(500);
    network.kill('b');
    members.get('b')!.stop({ leave: false });
    join('b', 2);
    clock.advance(50);
    expect(events.get('a')).toEqual(['nodeup b#1', 'nodedown b#1 restarted', 'nodeup b#2']);
  });

  it('after a partition heals, the down incarnations stay down and learn they were quarantined', () => {
    const { clock, network, members, events } = setup(['a', 'b', 'c']);
    clock.advance(2000);
    network.partition([['a', 'b'], ['c']]);
    clock.advance(2000);
    expect(names(members.get('a')!.nodes())).toEqual(['b']);
    expect(names(members.get('c')!.nodes())).toEqual([]);
    network.heal();
    clock.advance(500);
    expect(names(members.get('a')!.nodes())).toEqual(['b']);
    expect(events.get('c')).toContain('quarantined by a');
    expect(events.get('a')).toContain('quarantined by c');
  });

  it('a node that was itself paused does not declare its peers down on resuming; they quarantine it', () => {
    const clock = new SimulatedClock();
    const network = new SimulatedNetwork({ clock, seed: 3, delayMs: { min: 1, max: 5 } });
    // node a's timers stand still while it is "stopped" (SIGSTOP): they fire when it resumes
    let pausedUntil = 0;
    const pausable: Clock = {
      now: () => clock.now(),
      cancelTimer: (handle) => clock.cancelTimer(handle),
      setTimer: (delayMs, callback) => {
        const fire = (): void => {
          if (clock.now() < pausedUntil) clock.setTimer(pausedUntil - clock.now(), fire);
          else callback();
        };
        return clock.setTimer(delayMs, fire);
      },
    };
    const events: string[] = [];
    const a = new Membership({
      transport: network.transport('a'),
      cluster: 'test',
      self: { name: 'a', incarnation: 1 },
      clock: pausable,
    });
    a.monitor((event) =>
      events.push(
        event.kind === 'quarantined' ? `quarantined by ${event.by.name}` : `${event.kind} ${event.node.name}`,
      ),
    );
    const others = ['b', 'c'].map(
      (name) =>
        new Membership({
          transport: network.transport(name),
          cluster: 'test',
          self: { name, incarnation: 1 },
          clock,
        }),
    );
    for (const member of [a, ...others]) member.start();
    clock.advance(2000);
    pausedUntil = clock.now() + 3000;
    network.partition([['b', 'c'], ['a']]); // a hears nothing while stopped
    clock.advance(3000);
    network.heal();
    clock.advance(500);
    expect(others[0].nodes().map((node) => node.name)).toEqual(['c']);
    expect(events.filter((event) => event.startsWith('nodedown'))).toEqual([]);
    expect(events).toContain('quarantined by b');
  });

  it('drops malformed messages on its subjects and keeps running', () => {
    const { clock, network, members, malformed } = setup(['a', 'b']);
    const rogue = network.transport('rogue');
    rogue.publish('zbmd.test.heartbeat', new Uint8Array([0xc1, 0xff, 0x00]));
    rogue.publish('zbmd.test.heartbeat', new Packr({ useRecords: false }).pack({ n: 'x y', i: -1 }));
    rogue.publish('zbmd.test.leave', new Uint8Array(0));
    clock.advance(300);
    expect(malformed.length).toBeGreaterThanOrEqual(3 * 2); // both nodes saw all three
    expect(names(members.get('a')!.nodes())).toEqual(['b']);
  });

  it('rejects names that cannot be subject tokens', () => {
    const clock = new SimulatedClock();
    const network = new SimulatedNetwork({ clock });
    const error = (() => {
      try {
        new Membership({
          transport: network.transport('x'),
          cluster: 'c',
          self: { name: 'a.b', incarnation: 1 },
          clock,
        });
      } catch (e) {
        return e;
      }
    })();
    expect(isClusterError(error, 'invalid_option')).toBe(true);
  });
});
