/** The cluster and serving scenarios: they pass, and their oracles fail on what they must catch. */
import { describe, expect, it } from 'vitest';
import { clusterScenarioWith } from '../../src/fault/clusterScenarios.js';
import { KNOWN_DEVIATIONS } from '../../src/fault/knownDeviations.js';
import { replaySimulation, runSimulation } from '../../src/fault/Simulation.js';
import { runScenarioByName } from '../../src/fault/simulate.js';

describe('cluster scenario', () => {
  it('passes seeds with the known deviations and reaches leader kills, partitions and name conflicts', async () => {
    const report = await runSimulation({ scenario: clusterScenarioWith(), seeds: 12, stopAfterFailures: 1 });
    expect(report.failures.map((run) => String(run.error))).toEqual([]);
    for (const branch of ['leader-killed', 'leader-replaced', 'partition', 'names-consistent'])
      expect(report.coverage.branches[branch]?.hits ?? 0).toBeGreaterThan(0);
  });

  it('with no known deviation, the seeds that found the five cluster defects pass (11: rejoin with the store unreachable; 6: a node never told it was down)', async () => {
    expect(KNOWN_DEVIATIONS.size).toBe(0);
    for (const seed of [11, 6]) {
      const strict = await replaySimulation({ scenario: clusterScenarioWith(new Set()), seed });
      expect(strict.error === undefined ? 'ok' : String(strict.error)).toBe('ok');
      expect(strict.coverage['quarantined-rejoin']).toBeGreaterThan(0);
    }
  });

  it('replays a seed to the same simulated time and branches', async () => {
    const first = await replaySimulation({ scenario: clusterScenarioWith(), seed: 3 });
    const again = await replaySimulation({ scenario: clusterScenarioWith(), seed: 3 });
    expect(again.simulatedTimeMs).toBe(first.simulatedTimeMs);
    expect(again.coverage).toEqual(first.coverage);
  });
});

describe('serving scenario', () => {
  it('passes seeds and reaches retries, shared batches and every rejection it declares', async () => {
    const report = await runScenarioByName('serving', { seeds: 30 });
    expect(report.failures.map((run) => String(run.error))).toEqual([]);
    expect(report.coverage.unreachedBranches).toEqual([]);
  });
});
