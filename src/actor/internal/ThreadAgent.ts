import { CallRequest } from '../Call.js';
import { BadArgument, isCallExit } from '../errors.js';
import { Pid } from '../Pid.js';
import { callFrom, isCallHandle } from './calls.js';
import { describe } from './checks.js';
import { processesHere, processInfoHere, statsHere } from './introspection.js';
import { migrateLocal } from './migration.js';
import { DEAD, type ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';

/**
 * What one scheduler thread asks another to do for a process that lives there: the operations
 * that must be decided where the process is (is it alive, has it a name, can it be moved, what is
 * its state: process_info), and so
 * cannot be done from the asking thread. Each thread runs one agent process, started on first use
 * by the asking thread's system (`ActorSystem` keeps its pid per thread), answering calls.
 */
export type AgentRequest =
  | { readonly op: 'migrate'; readonly pid: Pid; readonly thread: number }
  | { readonly op: 'register'; readonly name: string; readonly pid: Pid }
  | { readonly op: 'unregister'; readonly name: string }
  | { readonly op: 'processInfo'; readonly pid: Pid }
  | { readonly op: 'processes' }
  | { readonly op: 'stats' };

/** The agent's answer: the operation's value, or its error (tagged errors cross as themselves). */
type AgentAnswer = { readonly value: unknown } | { readonly error: unknown };

/** The agent process of a thread. */
export class ThreadAgent {
  handle(message: unknown, context: unknown): void {
    if (!(message instanceof CallRequest) || !isCallHandle(message.from)) return;
    const from = message.from;
    const runtime = (context as ProcessRecord).runtime as Runtime;
    let outcome: Promise<unknown>;
    try {
      outcome = Promise.resolve(perform(runtime, message.request as AgentRequest));
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then(
      (value) => from.settle({ value } satisfies AgentAnswer, undefined),
      (error: unknown) => from.settle({ error } satisfies AgentAnswer, undefined),
    );
  }
}

function perform(runtime: Runtime, request: AgentRequest): unknown {
  if (!('pid' in request) || request.pid instanceof Pid) {
    if (request.op === 'migrate') return migrateLocal(runtime, request.pid, request.thread);
    if (request.op === 'register') return registerHere(runtime, request.name, request.pid);
    if (request.op === 'unregister') return runtime.registry.remove(request.name);
    if (request.op === 'processInfo') return processInfoHere(runtime, request.pid);
    if (request.op === 'processes') return processesHere(runtime);
    if (request.op === 'stats') return statsHere(runtime);
  }
  throw new BadArgument(`zbmd thread agent: unknown request ${describe(request)} (a runtime bug)`);
}

/** erlang:register/2 for a process of this thread, as the asking thread's system would do it. */
function registerHere(runtime: Runtime, name: string, pid: Pid): void {
  const record = runtime.lookup(pid);
  if (record === undefined || record.state === DEAD)
    throw new BadArgument(`cannot register '${name}': process ${pid} is not alive`);
  runtime.registry.add(name, record);
}

const AGENT = { module: import.meta.url, export: 'ThreadAgent' };

/**
 * Asks thread `thread`'s agent (started on first use, kept in `agents`) to perform `request`.
 * An agent lost with its thread (the thread was replaced) is started afresh, once.
 */
export async function askAgent<R>(
  runtime: Runtime,
  agents: Map<number, Pid>,
  thread: number,
  request: AgentRequest,
): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    let agent = agents.get(thread);
    if (agent === undefined) {
      agent = runtime.spawnByCode(AGENT, [], { thread }, undefined);
      agents.set(thread, agent);
    }
    let answer: AgentAnswer;
    try {
      answer = await callFrom<AgentAnswer>(runtime, undefined, agent, request, Number.POSITIVE_INFINITY);
    } catch (error) {
      const lost = isCallExit(error) && (error.reason === 'noproc' || error.reason === 'noconnection');
      if (!lost || attempt > 0) throw error;
      agents.delete(thread);
      continue;
    }
    if ('error' in answer) throw answer.error;
    return answer.value as R;
  }
}
