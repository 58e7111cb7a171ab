/**
 * The control socket: a local unix socket through which `zbmd top` and `zbmd view --attach`
 * read a running program's snapshot. A program opts in (`zbmd train --control [path]`, or
 * `--view`, which implies it). By default the socket is `<tmpdir>/zbmd/<pid>.sock`, in a
 * directory only its owner may enter; it is removed when the program stops.
 *
 * Protocol: the client writes a line `snapshot`; the server answers one line of JSON (an
 * `ObserverSnapshot`). Requests longer than `CONTROL_REQUEST_MAX_BYTES` close the connection.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlSocketError } from './errors.js';
import type { ObserverSnapshot } from './Snapshot.js';

export const CONTROL_REQUEST_MAX_BYTES = 1024;
/** Connections one control socket serves at once. */
export const CONTROL_CONNECTIONS_MAX = 16;
/** How long a client waits for an answer. */
export const CONTROL_TIMEOUT_MS = 5000;

/** Where control sockets live by default. */
export function controlDirectory(): string {
  return join(tmpdir(), 'zbmd');
}

/** The default socket path of process `pid`. */
export function defaultControlPath(pid = process.pid): string {
  return join(controlDirectory(), `${pid}.sock`);
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Listens on `path` (default `defaultControlPath()`), answering with `snapshot()`. */
export function startControlServer(
  snapshot: () => ObserverSnapshot | Promise<ObserverSnapshot>,
  path = defaultControlPath(),
): Promise<ControlServer> {
  if (path === defaultControlPath()) {
    mkdirSync(controlDirectory(), { recursive: true, mode: 0o700 });
    if (existsSync(path)) unlinkSync(path); // our own pid's name: left by a process that was killed
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    if (sockets.size >= CONTROL_CONNECTIONS_MAX) {
      socket.end(`${JSON.stringify({ error: `more than ${CONTROL_CONNECTIONS_MAX} clients` })}\n`);
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    serveConnection(socket, snapshot);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error) =>
      reject(new ControlSocketError(path, `cannot listen: ${(error as Error).message}`)),
    );
    server.listen(path, () => {
      chmodSync(path, 0o600);
      // a program that exits without closing (process.exit, an uncaught error) leaves no socket
      const removeAtExit = (): void => {
        if (existsSync(path)) unlinkSync(path);
      };
      process.once('exit', removeAtExit);
      resolve({
        path,
        close: () =>
          new Promise<void>((done) => {
            process.off('exit', removeAtExit);
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function serveConnection(socket: Socket, snapshot: () => ObserverSnapshot | Promise<ObserverSnapshot>): void {
  let pending = '';
  let queue = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    if (pending.length > CONTROL_REQUEST_MAX_BYTES) {
      socket.end(`${JSON.stringify({ error: `request longer than ${CONTROL_REQUEST_MAX_BYTES} bytes` })}\n`);
      return;
    }
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const request = line.trim();
      queue = queue.then(async () => {
        const answer =
          request === 'snapshot'
            ? await snapshot()
            : { error: `unknown request '${request}' (say 'snapshot')` };
        if (!socket.destroyed) socket.write(`${JSON.stringify(answer)}\n`);
      });
    }
  });
}

/** A connection to a control socket; `snapshot()` asks for one. */
export class ControlClient {
  private readonly socket: Socket;
  private buffer = '';
  private readonly waiting: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  private failure: ControlSocketError | undefined;
  private readonly connected: Promise<void>;

  constructor(readonly path: string) {
    this.socket = createConnection(path);
    this.socket.setEncoding('utf8');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', (error) => reject(this.fail(`cannot connect: ${error.message}`)));
    });
    this.connected.catch(() => undefined);
    this.socket.on('data', (chunk: string) => this.received(chunk));
    this.socket.on('close', () => this.fail('the program closed the connection'));
  }

  async snapshot(timeoutMs = CONTROL_TIMEOUT_MS): Promise<ObserverSnapshot> {
    await this.connected;
    if (this.failure !== undefined) throw this.failure;
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ControlSocketError(this.path, `no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiting.push({
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write('snapshot\n');
    });
    return parseSnapshot(this.path, line);
  }

  close(): void {
    this.socket.destroy();
  }

  private received(chunk: string): void {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    for (const line of lines) this.waiting.shift()?.resolve(line);
  }

  private fail(detail: string): ControlSocketError {
    this.failure ??= new ControlSocketError(this.path, detail);
    for (const waiter of this.waiting.splice(0)) waiter.reject(this.failure);
    return this.failure;
  }
}

function parseSnapshot(path: string, line: string): ObserverSnapshot {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlSocketError(path, 'the answer is not JSON');
  }
  const answer = value as Partial<ObserverSnapshot> & { error?: unknown };
  if (typeof answer.error === 'string') throw new ControlSocketError(path, answer.error);
  if (typeof answer.node !== 'string' || !Array.isArray(answer.processes) || !Array.isArray(answer.tree))
    throw new ControlSocketError(path, 'the answer is not a zbmd snapshot');
  return answer as ObserverSnapshot;
}

/** The control sockets of running programs in the default directory (their process is alive). */
export function listControlSockets(): string[] {
  let names: string[];
  try {
    names = readdirSync(controlDirectory());
  } catch {
    return [];
  }
  return names
    .filter((name) => /^\d+\.sock$/.test(name) && processAlive(Number(name.slice(0, -5))))
    .map((name) => join(controlDirectory(), name));
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The socket `zbmd top` / `zbmd view` attach to: `given`, else the only one running. */
export function chooseControlSocket(given: string | undefined): string {
  if (given !== undefined) return given;
  const found = listControlSockets();
  if (found.length === 1) return found[0];
  if (found.length === 0)
    throw new ControlSocketError(
      controlDirectory(),
      'no running zbmd program has a control socket; start one with --control (e.g. zbmd train --control)',
    );
  throw new ControlSocketError(
    controlDirectory(),
    `several programs run; choose one with --attach: ${found.join(', ')}`,
  );
}
