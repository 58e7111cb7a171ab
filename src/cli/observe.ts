/**
 * The observe side of the command line: the options long-running commands share
 * (`--metrics-port`, `--log-level`, `--control`, `--view`, `--plot`), how `zbmd train` wires
 * them to a `SystemObserver`, and the `zbmd top`, `zbmd view` and `zbmd plot` commands.
 */
import { writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ActorSystem } from '../actor/ActorSystem.js';
import type { EpochReport, Recovery, StepReport, TrainingStarted } from '../ml/training/index.js';
import type { ControlServer } from '../observe/ControlServer.js';
import type { RunningServer } from '../observe/httpServer.js';
import type { Logger } from '../observe/logger.js';
import type { DeviceRow, ObserverSnapshot } from '../observe/Snapshot.js';
import type { SystemObserver } from '../observe/SystemObserver.js';

export interface ObserveCliOptions {
  readonly metricsPort?: number;
  readonly logLevel?: string;
  /** A socket path, or true for the default one. */
  readonly control?: string | true;
  /** A port, or true for any free port. */
  readonly view?: number | true;
  readonly plot?: string;
}

function portParser(option: string): (value: string) => number {
  return (value) => {
    const port = Number(value);
    if (!Number.isInteger(port) || port < 0 || port > 65_535)
      throw new InvalidArgumentError(
        `${option}: expected a port in [0, 65535] (0: any free port), got '${value}'`,
      );
    return port;
  };
}

export type ObserveOptionName = keyof ObserveCliOptions;

/**
 * Adds the shared observe options to a long-running command (`only`: a subset, for a command
 * that has no curves to plot or serves its metrics itself).
 */
export function addObserveOptions(
  command: Command,
  only: readonly ObserveOptionName[] = ['metricsPort', 'logLevel', 'control', 'view', 'plot'],
): Command {
  if (only.includes('metricsPort'))
    command.option(
      '--metrics-port <port>',
      'serve Prometheus metrics on 127.0.0.1:<port>/metrics (0: any free port)',
      portParser('--metrics-port'),
    );
  if (only.includes('logLevel'))
    command.option(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent (default: ZBMD_LOG, else error for train, info otherwise)',
    );
  if (only.includes('control'))
    command.option(
      '--control [path]',
      'open a control socket for zbmd top / zbmd view --attach (default <tmpdir>/zbmd/<pid>.sock)',
    );
  if (only.includes('view'))
    command.option(
      '--view [port]',
      'serve the live web view on 127.0.0.1 (any free port unless given); opens --control too',
      portParser('--view'),
    );
  if (only.includes('plot'))
    command.option('--plot <file.svg>', 'write the loss and accuracy curves as SVG at the end');
  return command;
}

export interface SystemObservation {
  readonly observer: SystemObserver;
  readonly metrics: RunningServer | undefined;
  readonly control: ControlServer | undefined;
  readonly view: RunningServer | undefined;
  /** Closes the servers, stops the observer. */
  close(): Promise<void>;
}

/**
 * A `SystemObserver` over a long-running program's system (`zbmd serve`, `zbmd node`), with
 * what the options ask for: the metrics endpoint, the control socket, the web view. Crash
 * reports go to `logger`. `notice` gets one line per server started.
 */
export async function observeSystem(
  system: ActorSystem,
  options: ObserveCliOptions,
  logger: Logger,
  notice: (line: string) => void,
): Promise<SystemObservation> {
  const observe = await import('../observe/index.js');
  const observer = new observe.SystemObserver(system, { logger });
  const servers: Array<{ close(): Promise<void> }> = [];
  const close = async (): Promise<void> => {
    for (const server of servers.splice(0).reverse()) await server.close();
    observer.stop();
  };
  try {
    const metrics =
      options.metricsPort === undefined ? undefined : await observe.serveMetrics(options.metricsPort);
    if (metrics !== undefined) {
      servers.push(metrics);
      notice(`zbmd: metrics on ${metrics.url}/metrics`);
    }
    const control =
      options.control !== undefined || options.view !== undefined
        ? await observe.startControlServer(
            () => observer.snapshot(),
            typeof options.control === 'string' ? options.control : undefined,
          )
        : undefined;
    if (control !== undefined) {
      servers.push(control);
      notice(`zbmd: control socket ${control.path} (zbmd top --attach ${control.path})`);
    }
    const view =
      options.view === undefined
        ? undefined
        : await observe.startWebView({
            source: () => observer.snapshot(),
            port: options.view === true ? 0 : options.view,
            onChange: (listener) => observer.onChange(listener),
          });
    if (view !== undefined) {
      servers.push(view);
      notice(`zbmd: web view on ${view.url}/`);
    }
    return { observer, metrics, control, view, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface TrainingObservation {
  /** Spread into the `train` config. */
  readonly hooks: {
    onStarted(run: TrainingStarted): void;
    onStep(report: StepReport): void;
    onRecovery(recovery: Recovery): void;
    onEpoch(epoch: EpochReport): void;
  };
  /** The observer, once training started. */
  observer(): SystemObserver | undefined;
  readonly metrics: RunningServer | undefined;
  readonly view: RunningServer | undefined;
  readonly control: ControlServer | undefined;
  readonly logger: Logger;
  /** Writes the plot, closes the servers, stops the observer. */
  finish(): Promise<void>;
}

/**
 * Starts what the options ask for around a training run. `notice` gets one line per server
 * started (stderr in the CLI). The logger (crash reports) is always there; its default level
 * for training is `error` (repaired crashes are counted in the summary, not logged), unless
 * `--log-level` or `ZBMD_LOG` says otherwise.
 */
export async function observeTraining(
  options: ObserveCliOptions,
  notice: (line: string) => void,
): Promise<TrainingObservation> {
  const observe = await import('../observe/index.js');
  const level = observe.resolveLogLevel(
    options.logLevel,
    process.env.ZBMD_LOG === undefined ? { ZBMD_LOG: 'error' } : process.env,
  );
  const logger = observe.createLogger({ level });
  let observer: SystemObserver | undefined;
  const changeListeners = new Set<() => void>();
  const snapshot = (): ObserverSnapshot => observer?.snapshot() ?? emptySnapshot();
  const servers: Array<{ close(): Promise<void> }> = [];
  try {
    const metrics =
      options.metricsPort === undefined ? undefined : await observe.serveMetrics(options.metricsPort);
    if (metrics !== undefined) {
      servers.push(metrics);
      notice(`zbmd: metrics on ${metrics.url}/metrics`);
    }
    const wantsControl = options.control !== undefined || options.view !== undefined;
    const control = wantsControl
      ? await observe.startControlServer(
          snapshot,
          typeof options.control === 'string' ? options.control : undefined,
        )
      : undefined;
    if (control !== undefined) {
      servers.push(control);
      notice(`zbmd: control socket ${control.path} (zbmd top --attach ${control.path})`);
    }
    const view =
      options.view === undefined
        ? undefined
        : await observe.startWebView({
            source: snapshot,
            port: options.view === true ? 0 : options.view,
            onChange: (listener) => {
              changeListeners.add(listener);
              return () => changeListeners.delete(listener);
            },
          });
    if (view !== undefined) {
      servers.push(view);
      notice(`zbmd: web view on ${view.url}/`);
    }
    return {
      hooks: {
        onStarted(run) {
          observer = new observe.SystemObserver(run.system, { logger });
          observer.watchDevices(() => deviceRows(run));
          observer.onChange(() => {
            for (const listener of changeListeners) listener();
          });
        },
        onStep(report) {
          observer?.training.step(report.step, report.loss, performance.now());
        },
        onRecovery(recovery) {
          observer?.training.recovery(recovery.step, recovery.cause);
          observer?.changed();
        },
        onEpoch(epoch) {
          observer?.training.epoch(epoch.step, epoch.testAccuracy);
          observer?.changed();
        },
      },
      observer: () => observer,
      metrics,
      view,
      control,
      logger,
      async finish() {
        if (options.plot !== undefined && observer !== undefined) {
          writeFileSync(options.plot, observe.curvesSvg(observer.training.view()));
          notice(`zbmd: curves written to ${options.plot}`);
        }
        for (const server of servers.splice(0).reverse()) await server.close();
        observer?.stop();
      },
    };
  } catch (error) {
    for (const server of servers.reverse()) await server.close();
    throw error;
  }
}

function deviceRows(run: TrainingStarted): DeviceRow[] {
  const health = new Map(run.deviceHealth().map((report) => [report.deviceId, report]));
  const current = run.currentDevice();
  return run.devices.map((device) => {
    const report = health.get(device.id);
    return {
      id: device.id,
      memoryBytes: device.memoryBytes,
      health: report?.level ?? 'healthy',
      errorCount: report?.errorCount ?? 0,
      lastError: report?.lastError,
      current: device.id === current,
    };
  });
}

function emptySnapshot(): ObserverSnapshot {
  return {
    node: 'zbmd@local',
    timeMs: Date.now(),
    stats: { alive: 0, spawned: 0, exited: 0, messagesSent: 0, messagesDropped: 0, crashes: 0 },
    restartsTotal: 0,
    processes: [],
    tree: [],
    nodes: [],
    devices: [],
    events: [],
    training: undefined,
  };
}

/** `zbmd top`, `zbmd view --attach`, `zbmd plot`. */
export function registerObserveCommands(program: Command): void {
  program
    .command('top')
    .description('terminal observer of a running zbmd program (processes, supervision tree, nodes); q quits')
    .option('--attach <socket>', 'control socket of the program (default: the only one running)')
    .addOption(
      new Option('--sort <key>', 'sort processes by')
        .choices(['reductions', 'mailbox'])
        .default('reductions'),
    )
    .option('--interval <ms>', 'refresh interval', integerAtLeast(100), 1000)
    .option('--once', 'print one frame and exit', false)
    .action(
      async (options: {
        attach?: string;
        sort: 'reductions' | 'mailbox';
        interval: number;
        once: boolean;
      }) => {
        const observe = await import('../observe/index.js');
        const client = new observe.ControlClient(observe.chooseControlSocket(options.attach));
        try {
          await observe.runTop({
            source: () => client.snapshot(),
            input: process.stdin,
            output: process.stdout,
            intervalMs: options.interval,
            sort: options.sort,
            once: options.once,
          });
        } finally {
          client.close();
        }
      },
    );

  program
    .command('view')
    .description('serve the live web view of a running zbmd program on 127.0.0.1')
    .option('--attach <socket>', 'control socket of the program (default: the only one running)')
    .option('--port <port>', 'port (0: any free port)', portParser('--port'), 0)
    .action(async (options: { attach?: string; port: number }) => {
      const observe = await import('../observe/index.js');
      const path = observe.chooseControlSocket(options.attach);
      const client = new observe.ControlClient(path);
      await client.snapshot(); // fail now, with the socket's error, rather than on the page
      const view = await observe.startWebView({ source: () => client.snapshot(), port: options.port });
      console.error(`zbmd: web view of ${path} on ${view.url}/ (Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await view.close();
      client.close();
    });

  program
    .command('plot')
    .description('draw the loss and accuracy curves of a finished run (its metrics.jsonl) as SVG')
    .argument('<metrics.jsonl>', 'the metrics file of a run (in its --checkpoint-dir)')
    .requiredOption('-o, --output <file.svg>', 'where to write the SVG')
    .action(async (file: string, options: { output: string }) => {
      const { curvesSvg, readMetricsFile } = await import('../observe/plot.js');
      const curves = readMetricsFile(file);
      writeFileSync(options.output, curvesSvg(curves, `zbmd training: ${file}`));
      console.log(
        `${options.output}: ${curves.loss.length} steps, ${curves.accuracy.length} epochs, ${curves.recoveries.length} recoveries`,
      );
    });
}

function integerAtLeast(minimum: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < minimum)
      throw new InvalidArgumentError(`expected an integer >= ${minimum}, got '${value}'`);
    return parsed;
  };
}
