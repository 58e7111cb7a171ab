/**
 * `zbmd top`: a terminal observer (Erlang's observer, in text). It polls a snapshot source
 * (a control socket) and draws a frame: the processes sorted by reductions or mailbox length,
 * the supervision trees with restart counts, the cluster nodes, the devices. Keys: `q` quits,
 * `r` sorts by reductions, `m` by mailbox length. Reads no layer: only snapshots.
 */
import type { ObserverSnapshot, ProcessRow, TreeNode } from './Snapshot.js';

export type TopSort = 'reductions' | 'mailbox';

export const TOP_INTERVAL_MS = 1000;
/** Process rows drawn. */
export const TOP_PROCESS_ROWS = 15;

export interface TopFrameOptions {
  readonly sort: TopSort;
  readonly processRows?: number;
  /** Width the lines are cut to. */
  readonly columns?: number;
}

/** One frame of text (no escape codes). */
export function renderTopFrame(snapshot: ObserverSnapshot, options: TopFrameOptions): string {
  const columns = options.columns ?? 100;
  const { stats } = snapshot;
  const lines = [
    `zbmd top - ${snapshot.node} - ${new Date(snapshot.timeMs).toISOString().slice(11, 19)} UTC  (q quit, r sort by reductions, m by mailbox)`,
    `processes ${stats.alive}  spawned ${stats.spawned}  crashes ${stats.crashes}  restarts ${snapshot.restartsTotal}  messages ${stats.messagesSent}  dropped ${stats.messagesDropped}`,
  ];
  if (snapshot.training !== undefined) {
    const training = snapshot.training;
    lines.push(
      `training step ${training.steps}  loss ${training.lastLoss?.toFixed(4) ?? '-'}  ${training.stepsPerSec.toFixed(1)} steps/s  recoveries ${training.recoveries.length}`,
    );
  }
  lines.push('', `PROCESSES (by ${options.sort === 'mailbox' ? 'mailbox length' : 'reductions'})`);
  lines.push(
    `${'PID'.padEnd(14)}${'NAME'.padEnd(22)}${'STATUS'.padEnd(11)}${'MAILBOX'.padStart(9)}${'REDUCTIONS'.padStart(13)}`,
  );
  for (const row of sortProcesses(snapshot.processes, options.sort).slice(
    0,
    options.processRows ?? TOP_PROCESS_ROWS,
  )) {
    lines.push(
      `${row.pid.padEnd(14)}${(row.name ?? '').slice(0, 21).padEnd(22)}${row.status.padEnd(11)}${String(row.mailboxLength).padStart(9)}${String(row.reductions).padStart(13)}`,
    );
  }
  lines.push('', 'SUPERVISION TREE');
  if (snapshot.tree.length === 0) lines.push('  (no supervisor)');
  for (const root of snapshot.tree) appendTree(root, '', true, true, lines);
  lines.push('', 'NODES');
  if (snapshot.nodes.length === 0) lines.push(`  ${snapshot.node} (this node; no cluster)`);
  for (const node of snapshot.nodes)
    lines.push(
      `  ${node.name.padEnd(24)} ${node.status.padEnd(5)}${node.phi === undefined ? '' : ` phi ${node.phi.toFixed(2)}`}${node.leader === true ? ' leader' : ''}`,
    );
  if (snapshot.devices.length > 0) {
    lines.push('', 'DEVICES');
    for (const device of snapshot.devices)
      lines.push(
        `  ${device.current ? '*' : ' '} ${device.id.padEnd(12)} ${device.health.padEnd(9)} errors ${device.errorCount}  memory ${formatBytes(device.memoryBytes)}`,
      );
  }
  return lines.map((line) => (line.length > columns ? line.slice(0, columns) : line)).join('\n');
}

export function sortProcesses(rows: readonly ProcessRow[], sort: TopSort): ProcessRow[] {
  const key =
    sort === 'mailbox' ? (row: ProcessRow) => row.mailboxLength : (row: ProcessRow) => row.reductions;
  return [...rows].sort((a, b) => key(b) - key(a) || b.reductions - a.reductions);
}

function appendTree(node: TreeNode, indent: string, last: boolean, root: boolean, lines: string[]): void {
  const branch = root ? '' : last ? '└── ' : '├── ';
  const restarts = node.restarts > 0 ? `  restarts ${node.restarts}` : '';
  const kind = node.type === 'supervisor' ? `supervisor ${node.strategy ?? ''}` : 'worker';
  lines.push(`  ${indent}${branch}${node.id} ${node.pid} ${kind}${restarts}`);
  const childIndent = root ? '' : `${indent}${last ? '    ' : '│   '}`;
  node.children.forEach((child, index) => {
    appendTree(child, childIndent, index === node.children.length - 1, false, lines);
  });
}

export function formatBytes(bytes: number): string {
  if (bytes <= 0) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export interface TopOptions {
  readonly source: () => Promise<ObserverSnapshot>;
  readonly input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
  readonly output: NodeJS.WritableStream & { columns?: number };
  readonly intervalMs?: number;
  readonly sort?: TopSort;
  /** Draw one frame and return (no keys read). */
  readonly once?: boolean;
}

const CLEAR = '\x1b[H\x1b[2J';

/** Runs the observer until `q` (or the end of input, or the program going away). */
export async function runTop(options: TopOptions): Promise<void> {
  let sort: TopSort = options.sort ?? 'reductions';
  const draw = async (): Promise<void> => {
    const snapshot = await options.source();
    const frame = renderTopFrame(snapshot, { sort, columns: options.output.columns ?? 120 });
    options.output.write(options.once ? `${frame}\n` : `${CLEAR}${frame}\n`);
  };
  if (options.once) return draw();
  const { input } = options;
  const raw = input.isTTY === true && typeof input.setRawMode === 'function';
  if (raw) input.setRawMode!(true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let stopped = false;
      const stop = (error?: unknown): void => {
        if (stopped) return;
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        input.off('data', onKey);
        input.off('end', onEnd);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onKey = (chunk: Buffer | string): void => {
        for (const key of chunk.toString()) {
          if (key === 'q' || key === '\u0003') {
            stop();
            return;
          }
          if (key === 'r' || key === 'm') {
            sort = key === 'm' ? 'mailbox' : 'reductions';
            draw().catch(stop);
          }
        }
      };
      const onEnd = (): void => stop();
      const tick = (): void => {
        draw().then(() => {
          if (!stopped) timer = setTimeout(tick, options.intervalMs ?? TOP_INTERVAL_MS);
        }, stop);
      };
      input.on('data', onKey);
      input.on('end', onEnd);
      input.resume();
      tick();
    });
  } finally {
    if (raw) input.setRawMode!(false);
    input.pause();
  }
}
