import { describe, expect, it } from 'vitest';
import {
  type ChildSpecProblem,
  DEFAULT_WORKER_SHUTDOWN_MS,
  isInvalidChildSpec,
  isInvalidSupervisorOptions,
  resolveChildSpec,
  type SupervisorOptionProblem,
  startSupervisor,
} from '../../src/supervision/index.js';
import { testSystem } from './helpers.js';

const start = () => 'ignore' as const;

describe('child specs: validated once at the edge, one tagged reason per bad field', () => {
  it('fills in the OTP defaults', () => {
    expect(resolveChildSpec({ id: 'w', start })).toEqual({
      id: 'w',
      start,
      restart: 'permanent',
      shutdown: DEFAULT_WORKER_SHUTDOWN_MS,
      type: 'worker',
      significant: false,
      heartbeatMs: undefined,
    });
    expect(resolveChildSpec({ id: 's', start, type: 'supervisor' }).shutdown).toBe('infinity');
  });

  const cases: [string, unknown, ChildSpecProblem][] = [
    ['not an object', 'worker', 'invalid_child_spec'],
    ['an unknown field', { id: 'w', start, restarts: 'permanent' }, 'invalid_child_spec'],
    ['no id', { start }, 'invalid_child_id'],
    ['an empty id', { id: '', start }, 'invalid_child_id'],
    ['a long id', { id: 'x'.repeat(257), start }, 'invalid_child_id'],
    ['no start', { id: 'w' }, 'invalid_start'],
    ['a bad restart', { id: 'w', start, restart: 'always' }, 'invalid_restart_type'],
    ['a negative shutdown', { id: 'w', start, shutdown: -1 }, 'invalid_shutdown'],
    ['a fractional shutdown', { id: 'w', start, shutdown: 1.5 }, 'invalid_shutdown'],
    ['a bad shutdown word', { id: 'w', start, shutdown: 'never' }, 'invalid_shutdown'],
    ['a bad type', { id: 'w', start, type: 'daemon' }, 'invalid_child_type'],
    [
      'a non-boolean significant',
      { id: 'w', start, restart: 'transient', significant: 1 },
      'invalid_significant',
    ],
    ['a permanent significant child', { id: 'w', start, significant: true }, 'bad_combination'],
    ['a zero heartbeat', { id: 'w', start, heartbeatMs: 0 }, 'invalid_heartbeat'],
    ['an infinite heartbeat', { id: 'w', start, heartbeatMs: Number.POSITIVE_INFINITY }, 'invalid_heartbeat'],
  ];
  it.each(cases)('refuses %s', (_what, spec, problem) => {
    let error: unknown;
    try {
      resolveChildSpec(spec);
    } catch (caught) {
      error = caught;
    }
    expect(isInvalidChildSpec(error) && error.problem).toBe(problem);
  });

  it('a duplicate id among the children fails the supervisor start before anything is spawned', async () => {
    const { system } = testSystem();
    const error = await startSupervisor(system, {
      children: [
        { id: 'a', start },
        { id: 'a', start },
      ],
    }).catch((e: unknown) => e);
    expect(isInvalidChildSpec(error) && error.problem).toBe('duplicate_child_id');
    expect(system.stats().spawned).toBe(0);
  });
});

describe('supervisor options', () => {
  const cases: [string, unknown, SupervisorOptionProblem][] = [
    ['not an object', null, 'invalid_options'],
    ['a bad strategy', { strategy: 'one_for_some' }, 'invalid_strategy'],
    ['a negative intensity', { intensity: -1 }, 'invalid_intensity'],
    ['a huge intensity', { intensity: 2_000_000 }, 'invalid_intensity'],
    ['a zero period', { periodMs: 0 }, 'invalid_period'],
    ['a bad autoShutdown', { autoShutdown: 'sometimes' }, 'invalid_auto_shutdown'],
    ['a zero maxChildren', { maxChildren: 0 }, 'invalid_max_children'],
    ['children not an array', { children: {} }, 'invalid_children'],
    [
      'two templates for simple_one_for_one',
      { strategy: 'simple_one_for_one', children: [] },
      'invalid_children',
    ],
    [
      'more children than maxChildren',
      {
        maxChildren: 1,
        children: [
          { id: 'a', start },
          { id: 'b', start },
        ],
      },
      'too_many_children',
    ],
    [
      'a bad backoff',
      { backoff: { type: 'exponential', initialDelayMs: 10, maxDelayMs: 5 } },
      'invalid_backoff',
    ],
    [
      'a bad jitter',
      { backoff: { type: 'exponential', initialDelayMs: 10, maxDelayMs: 50, jitter: 2 } },
      'invalid_backoff',
    ],
    ['an empty name', { name: '' }, 'invalid_name'],
    ['a bad onEvent', { onEvent: 'log' }, 'invalid_on_event'],
  ];
  it.each(cases)('refuses %s', async (_what, options, problem) => {
    const { system } = testSystem();
    const error = await startSupervisor(system, options as never).catch((e: unknown) => e);
    expect(isInvalidSupervisorOptions(error) && error.problem).toBe(problem);
  });
});
