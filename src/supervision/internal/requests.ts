import type { CallRequest, Pid } from '../../actor/index.js';
import { resolveChildSpec } from '../ChildSpec.js';
import { ChildStartFailed, isInvalidChildSpec, MaxChildrenReached } from '../errors.js';
import type {
  ChildCounts,
  DeleteChildResult,
  GetChildSpecResult,
  RestartChildResult,
  StartChildResult,
  TerminateChildResult,
} from '../SupervisorResults.js';
import { ChildRecord } from './ChildRecord.js';
import {
  CountChildrenRequest,
  DeleteChildRequest,
  GetChildSpecRequest,
  RestartChildRequest,
  StartChildRequest,
  StopRequest,
  TerminateChildRequest,
  WhichChildrenRequest,
} from './messages.js';
import { StartFailure, type StartOutcome } from './StartOutcome.js';
import type { SupervisorCore } from './SupervisorCore.js';

/**
 * Answers the calls of the public API. Expected outcomes are values (`{ error: 'not_found' }`);
 * nothing a caller sends can crash the supervisor.
 */
export function handleRequest(core: SupervisorCore, call: CallRequest): void | Promise<void> {
  const request = call.request;
  const reply = (value: unknown): void => {
    core.context.system.reply(call.from, value);
  };
  if (request instanceof WhichChildrenRequest) return reply(core.children());
  if (request instanceof CountChildrenRequest) return reply(countChildren(core));
  if (request instanceof GetChildSpecRequest) return reply(getChildSpec(core, request.target));
  if (request instanceof DeleteChildRequest) return reply(deleteChild(core, request.id));
  if (request instanceof StartChildRequest) return startChild(core, request.specOrArgs).then(reply);
  if (request instanceof TerminateChildRequest) return terminateChild(core, request.target).then(reply);
  if (request instanceof RestartChildRequest) return restartChild(core, request.id).then(reply);
  if (request instanceof StopRequest) return core.shutdown(request.reason, () => reply('ok'));
  reply({ error: 'unexpected_call' });
}

function find(core: SupervisorCore, target: string | Pid): ChildRecord | undefined {
  // OTP: children of a simple_one_for_one supervisor are named by pid, the others by id
  return typeof target === 'string'
    ? core.dynamic
      ? undefined
      : core.byId.get(target)
    : core.childOf(target);
}

async function startChild(core: SupervisorCore, specOrArgs: unknown): Promise<StartChildResult> {
  const dynamic = core.dynamic;
  if (dynamic && !Array.isArray(specOrArgs)) return { error: 'expected_extra_args' };
  let child: ChildRecord;
  if (dynamic) {
    child = new ChildRecord(core.template, specOrArgs as unknown[]);
  } else {
    try {
      child = new ChildRecord(resolveChildSpec(specOrArgs), []);
    } catch (error) {
      if (isInvalidChildSpec(error)) return { error };
      throw error;
    }
    const existing = core.byId.get(child.id);
    if (existing !== undefined) {
      return existing.pid !== undefined
        ? { error: 'already_started', pid: existing.pid }
        : { error: 'already_present' };
    }
  }
  if (core.records.size >= core.config.maxChildren) {
    return { error: new MaxChildrenReached(core.context.self, core.config.maxChildren) };
  }
  const outcome = await core.startProcess(child);
  return startedChild(core, child, outcome);
}

function startedChild(core: SupervisorCore, child: ChildRecord, outcome: StartOutcome): StartChildResult {
  if (outcome instanceof StartFailure) {
    core.emit('child_start_failed', child, undefined, outcome.reason);
    return { error: new ChildStartFailed(child.id, outcome.reason) };
  }
  if (outcome === 'ignore') {
    // OTP keeps an ignored spec, except a temporary one or a simple_one_for_one child
    if (child.spec.restart !== 'temporary' && !core.dynamic) core.add(child);
    return { pid: undefined };
  }
  core.add(child);
  core.emit('child_started', child, outcome, undefined);
  return { pid: outcome };
}

async function terminateChild(core: SupervisorCore, target: string | Pid): Promise<TerminateChildResult> {
  const child = find(core, target);
  if (child === undefined) return { error: 'not_found' };
  core.cancelRestart(child);
  if (child.pid !== undefined) await core.stopChild(child);
  if (child.spec.restart === 'temporary' || core.dynamic) core.remove(child);
  return 'ok';
}

async function restartChild(core: SupervisorCore, id: string): Promise<RestartChildResult> {
  if (core.dynamic) return { error: 'simple_one_for_one' };
  const child = core.byId.get(id);
  if (child === undefined) return { error: 'not_found' };
  if (child.pid !== undefined) return { error: 'running' };
  if (child.restarting) return { error: 'restarting' };
  const outcome = await core.startProcess(child);
  if (outcome instanceof StartFailure) {
    core.emit('child_start_failed', child, undefined, outcome.reason);
    return { error: new ChildStartFailed(id, outcome.reason) };
  }
  if (outcome === 'ignore') return { pid: undefined };
  core.emit('child_started', child, outcome, undefined);
  return { pid: outcome };
}

function deleteChild(core: SupervisorCore, id: string): DeleteChildResult {
  if (core.dynamic) return { error: 'simple_one_for_one' };
  const child = core.byId.get(id);
  if (child === undefined) return { error: 'not_found' };
  if (child.pid !== undefined) return { error: 'running' };
  if (child.restarting) return { error: 'restarting' };
  core.remove(child);
  return 'ok';
}

function countChildren(core: SupervisorCore): ChildCounts {
  let active = 0;
  let supervisors = 0;
  for (const child of core.records) {
    if (child.pid !== undefined) active++;
    if (child.spec.type === 'supervisor') supervisors++;
  }
  const specs = core.records.size;
  return { specs, active, supervisors, workers: specs - supervisors };
}

function getChildSpec(core: SupervisorCore, target: string | Pid): GetChildSpecResult {
  const child = find(core, target);
  return child === undefined ? { error: 'not_found' } : { spec: child.spec };
}
