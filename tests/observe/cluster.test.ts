/// <reference lib="dom" />
/**
 * An observer watching a real cluster node: a real nats-server (JetStream, 127.0.0.1, temp dir)
 * and two ClusterNodes in this process. Waits are on the nodes' own events, not on sleeps.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actor/index.js';
import { ClusterNode } from '../../src/cluster/ClusterNode.js';
import { type NatsServer, startNatsServer } from '../../src/cluster/internal/natsServer.js';
import type { NodeEvent } from '../../src/cluster/Membership.js';
import {
  ControlClient,
  metricsRegistry,
  renderTopFrame,
  SystemObserver,
  startWebView,
} from '../../src/observe/index.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function nextEvent(node: ClusterNode, wanted: (event: NodeEvent) => boolean): Promise<NodeEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no such node event within 20 s')), 20_000);
    const stop = node.monitorNodes((event) => {
      if (!wanted(event)) return;
      clearTimeout(timer);
      stop();
      resolve(event);
    });
  });
}

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const series = (text: string, name: string): string[] =>
  text.split('\n').filter((line) => line.startsWith(`${name}{`) && line.includes('node="obs-a"'));

describe('SystemObserver.watchCluster on a real nats-server', () => {
  it('lists the other node with its phi, shows it in metrics and top, and drops it when it leaves', async () => {
    const server: NatsServer = await startNatsServer();
    cleanups.push(() => server.stop());
    const a = await ClusterNode.start({ name: 'a', nats: server.url, leaseMs: 1000 });
    cleanups.push(() => a.close());
    const system = new ActorSystem({ nodeName: 'obs-a' });
    cleanups.push(() => system.shutdown());
    const observer = new SystemObserver(system);
    cleanups.push(() => observer.stop());
    observer.watchCluster(a);

    const up = nextEvent(a, (event) => event.kind === 'nodeup');
    const b = await ClusterNode.start({ name: 'b', nats: server.url, leaseMs: 1000 });
    let bClosed = false;
    cleanups.push(() => (bClosed ? undefined : b.close()));
    const bKey = `b#${b.self.incarnation}`;
    expect(await up).toMatchObject({ kind: 'nodeup', node: { name: 'b' } });
    await observer.refreshCluster();

    const snapshot = observer.snapshot();
    expect(snapshot.nodes[0]).toMatchObject({
      name: `a#${a.self.incarnation}`,
      status: 'self',
      phi: undefined,
    });
    const peer = snapshot.nodes.find((row) => row.name === bKey);
    expect(peer, JSON.stringify(snapshot.nodes)).toMatchObject({ status: 'up' });
    expect(typeof peer!.phi).toBe('number');
    expect(peer!.phi).toBeGreaterThanOrEqual(0);
    expect(peer!.phi).toBeLessThan(8); // below the threshold: b is up
    expect(snapshot.nodes).toHaveLength(2);
    expect(JSON.parse(JSON.stringify(snapshot)).nodes).toHaveLength(2); // what the control socket sends
    expect(renderTopFrame(snapshot, { sort: 'reductions' })).toContain(bKey);

    if (existsSync(CHROMIUM)) {
      // the web view's nodes panel, in headless Debian Chromium
      const profile = await mkdtemp(join(tmpdir(), 'zbmd-cluster-view-'));
      cleanups.push(() => rm(profile, { recursive: true, force: true }));
      const view = await startWebView({ source: () => observer.snapshot(), port: 0 });
      cleanups.push(() => view.close());
      const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        args: FLAGS,
        headless: true,
        userDataDir: join(profile, 'chromium'),
      });
      cleanups.push(() => browser.close());
      const page = await browser.newPage();
      await page.goto(`${view.url}/`, { waitUntil: 'load' });
      await page.waitForFunction(
        (name) => document.getElementById('nodes')?.textContent?.includes(name) === true,
        { timeout: 10_000 },
        bKey,
      );
      expect(await page.$eval('#nodes', (element) => element.textContent)).toMatch(
        new RegExp(`a#\\d+\\s*self.*${bKey}\\s*upphi \\d+\\.\\d\\d`),
      );
      await page.screenshot({ path: join(profile, 'nodes.png'), fullPage: true });
    }

    let text = await metricsRegistry.metrics();
    expect(series(text, 'zbmd_cluster_nodes_up')).toEqual(['zbmd_cluster_nodes_up{node="obs-a"} 2']);
    expect(series(text, 'zbmd_cluster_phi').join('\n')).toMatch(
      new RegExp(`^zbmd_cluster_phi\\{node="obs-a",peer="${bKey}"\\} \\d`),
    );
    expect(series(text, 'zbmd_cluster_leader')).toHaveLength(1);
    expect(series(text, 'zbmd_cluster_node_events_total')).toContain(
      'zbmd_cluster_node_events_total{node="obs-a",kind="nodeup"} 1',
    );

    const down = nextEvent(a, (event) => event.kind === 'nodedown');
    await b.close();
    bClosed = true;
    expect(await down).toMatchObject({ kind: 'nodedown', reason: 'left' });
    await observer.refreshCluster();
    const after = observer.snapshot();
    expect(after.nodes.map((row) => row.name)).toEqual([`a#${a.self.incarnation}`]);
    expect(renderTopFrame(after, { sort: 'reductions' })).not.toContain(bKey);
    text = await metricsRegistry.metrics();
    expect(series(text, 'zbmd_cluster_nodes_up')).toEqual(['zbmd_cluster_nodes_up{node="obs-a"} 1']);
    expect(series(text, 'zbmd_cluster_phi')).toEqual([]);
    expect(series(text, 'zbmd_cluster_node_events_total')).toContain(
      'zbmd_cluster_node_events_total{node="obs-a",kind="nodedown"} 1',
    );
  }, 60_000);

  it('rejects a refresh interval below the minimum', () => {
    const system = new ActorSystem({ nodeName: 'obs-b' });
    const observer = new SystemObserver(system, { metrics: false });
    const node = {
      self: { name: 'x', incarnation: 1 },
      nodes: () => [],
      monitorNodes: () => () => {},
      isLeader: false,
      leader: undefined,
      status: async () => ({ nodes: [] }),
    };
    expect(() => observer.watchCluster(node, { phiRefreshMs: 10 })).toThrow(/phiRefreshMs must be .* >= 50/);
    observer.stop();
    system.shutdown();
  });
});

describe('zbmd node --metrics-port --control (a child process on a real nats-server)', () => {
  it('serves zbmd_cluster_* and answers snapshots with the nodes; the peer leaving shows', async () => {
    const BIN = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
    const BUILT = fileURLToPath(new URL('../../dist/src/cli/cluster.js', import.meta.url));
    expect(existsSync(BUILT), 'the compiled code is missing: run `npm run build` before the tests').toBe(
      true,
    );
    const server = await startNatsServer();
    cleanups.push(() => server.stop());
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-node-observe-'));
    cleanups.push(() => rm(directory, { recursive: true, force: true }));
    const socket = join(directory, 'node.sock');
    const child = spawn(
      process.execPath,
      [
        BIN,
        'node',
        '--nats',
        server.url,
        '--name',
        'cli1',
        '--json',
        '--metrics-port',
        '0',
        '--control',
        socket,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const stdout = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const stderr = createInterface({ input: child.stderr! })[Symbol.asyncIterator]();
    let metricsUrl: string | undefined;
    for (let i = 0; i < 10 && metricsUrl === undefined; i++) {
      const line = await stderr.next();
      if (line.done) break;
      metricsUrl = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(line.value)?.[1];
    }
    expect(metricsUrl).toBeDefined();
    const waitFor = async (kind: string) => {
      for (;;) {
        const line = await stdout.next();
        if (line.done) throw new Error(`zbmd node ended before '${kind}'`);
        if (JSON.parse(line.value).kind === kind) return;
      }
    };
    const peer = await ClusterNode.start({ name: 'peer', nats: server.url });
    let peerClosed = false;
    cleanups.push(() => (peerClosed ? undefined : peer.close()));
    await waitFor('nodeup');
    const scrape = async () => (await fetch(metricsUrl!, { signal: AbortSignal.timeout(10_000) })).text();
    const client = new ControlClient(socket);
    cleanups.push(() => client.close());
    // The phi is read in the background (after the nodeup, then every 500 ms): ask until the
    // peer's row has one (each round is a snapshot over the socket; 10 s at most).
    let rows = (await client.snapshot()).nodes;
    const deadline = Date.now() + 10_000;
    while (rows.find((row) => row.name.startsWith('peer#'))?.phi === undefined && Date.now() < deadline)
      rows = (await client.snapshot()).nodes;
    expect(rows.map((row) => row.name)).toEqual([
      expect.stringMatching(/^cli1#\d+$/),
      `peer#${peer.self.incarnation}`,
    ]);
    const metrics = await scrape();
    expect(metrics).toContain('zbmd_cluster_nodes_up{node="cli1"} 2');
    expect(metrics).toMatch(
      new RegExp(`^zbmd_cluster_phi\\{node="cli1",peer="peer#${peer.self.incarnation}"\\} \\d`, 'm'),
    );
    expect(metrics).toMatch(/^zbmd_processes\{node="cli1"\} \d+$/m);

    await peer.close();
    peerClosed = true;
    await waitFor('nodedown');
    expect((await client.snapshot()).nodes.map((row) => row.name)).toEqual([expect.stringMatching(/^cli1#/)]);
    expect(await scrape()).toContain('zbmd_cluster_node_events_total{node="cli1",kind="nodedown"} 1');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
