/** The nats-server launcher: real servers on 127.0.0.1, a 3-server JetStream cluster, failover. */
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { isClusterError } from '../../src/cluster/errors.js';
import { type NatsServer, startNatsCluster, startNatsServer } from '../../src/cluster/internal/natsServer.js';

const started: NatsServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.stop()));
});

describe('nats-server launcher', () => {
  it('starts a JetStream server on 127.0.0.1 and stops it, removing its store', async () => {
    const server = await startNatsServer();
    started.push(server);
    expect(server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    const connection = await connect({ servers: server.url });
    const kv = await new Kvm(connection).create('launcher');
    await kv.put('k', 'v');
    expect((await kv.get('k'))?.string()).toBe('v');
    await connection.close();
    await server.stop();
    expect(server.running).toBe(false);
  });

  it('refuses a client without the password when one is set', async () => {
    const server = await startNatsServer({ jetstream: false, user: 'zbmd', password: 'secret' });
    started.push(server);
    await expect(
      connect({ servers: server.url, user: 'zbmd', pass: 'wrong', reconnect: false }),
    ).rejects.toThrow();
    const connection = await connect({ servers: server.url, user: 'zbmd', pass: 'secret' });
    await connection.close();
  });

  it('says what to install when the binary is missing', async () => {
    const error = await startNatsServer({ binary: 'nats-server-that-does-not-exist' }).catch((e) => e);
    expect(isClusterError(error, 'server_failed')).toBe(true);
    expect(String(error.message)).toContain('install');
  });

  it('a 3-server cluster keeps a replicated bucket through the loss of one server', async () => {
    const servers = await startNatsCluster(3);
    started.push(...servers);
    const connection = await connect({
      servers: servers.map((server) => server.url),
      ignoreClusterUpdates: true,
      reconnectTimeWait: 50,
      maxReconnectAttempts: -1,
    });
    const kvm = new Kvm(connection);
    let kv: Awaited<ReturnType<Kvm['create']>> | undefined;
    for (let attempt = 0; kv === undefined; attempt++) {
      // the JetStream meta leader is elected a moment after the servers are up
      kv = await kvm.create('replicated', { replicas: 3 }).catch((error) => {
        if (attempt > 100) throw error;
        return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100));
      });
    }
    await kv.put('before', '1');
    const victim = servers.find((server) => connection.info?.port === server.port) ?? servers[0];
    victim.signal('SIGKILL');
    await victim.exited();
    let value: string | undefined;
    for (let attempt = 0; value === undefined && attempt < 100; attempt++) {
      value = await kv
        .put('after', '2')
        .then(async () => (await kv.get('before'))?.string())
        .catch(() => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100)));
    }
    expect(value).toBe('1');
    expect((await kv.get('after'))?.string()).toBe('2');
    await connection.close();
  }, 60_000);
});
