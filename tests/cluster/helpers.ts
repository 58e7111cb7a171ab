/** Real node processes for the cluster tests: spawned, read line by line, always killed. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/node.mjs', import.meta.url));

export type NodeLine = { kind: string; [field: string]: any };

export class NodeProcess {
  readonly lines: NodeLine[] = [];
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
        try {
          this.lines.push(JSON.parse(line) as NodeLine);
        } catch {
          this.lines.push({ kind: 'text', line });
        }
        for (const wake of [...this.#waiters]) wake();
      }
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** The first line (from `from` on) matching `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (line: NodeLine) => boolean, timeoutMs: number, from = 0): Promise<NodeLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.slice(from).find(predicate);
        if (found === undefined) return false;
        this.#waiters.delete(wake);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(
          new Error(
            `no matching line within ${timeoutMs} ms; saw:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(wake);
      check();
    });
  }

  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

export function spawnNode(servers: string[], name: string, extra: string[] = []): NodeProcess {
  const child = spawn(process.execPath, [FIXTURE, servers.join(','), name, ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new NodeProcess(child);
}

const REMOTE_FIXTURE = fileURLToPath(new URL('./fixtures/remoteNode.mjs', import.meta.url));

/** A node with an attached actor system running an echo server (fixtures/remoteNode.mjs). */
export function spawnRemoteNode(servers: string[], name: string): NodeProcess {
  const child = spawn(process.execPath, [REMOTE_FIXTURE, servers.join(','), name], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new NodeProcess(child);
}
