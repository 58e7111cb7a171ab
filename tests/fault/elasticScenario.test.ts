/** The elastic scenario: it passes, reaches every branch it declares, and replays a seed. */
import { describe, expect, it } from 'vitest';
import { replayScenarioByName, runScenarioByName } from '../../src/fault/simulate.js';

describe('elastic scenario', () => {
  it('passes 20 seeds with workers and leaders lost mid-step and joins, and reaches every branch', async () => {
    const report = await runScenarioByName('elastic', { seeds: 20 });
    expect(report.failures.map((run) => String(run.error))).toEqual([]);
    expect(report.coverage.unreachedBranches).toEqual([]);
    expect(report.coverage.faults.actor_crash.hits).toBeGreaterThan(0);
  });

  it('replays a seed to the same faults and branches', async () => {
    const first = await replayScenarioByName('elastic', 7);
    const again = await replayScenarioByName('elastic', 7);
    expect(first.ok).toBe(true);
    expect(again.faultFingerprint).toBe(first.faultFingerprint);
    expect(again.coverage).toEqual(first.coverage);
  });
});
