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

  it('without the known deviations, it flags the rejoin that dies of an unreachable store (seed 11)', async () => {
    const strict = await replaySimulation({ scenario: clusterScenarioWith(new Set()), seed: 11 });
    expect(strict.ok).toBe(false);
    expect(String(strict.error)).toMatch(/rejection nobody handled.*bucket operation timed out/);
    const known = await replaySimulation({ scenario: clusterScenarioWith(KNOWN_DEVIATIONS), seed: 11 });
    expect(known.ok).toBe(true);
    expect(known.coverage['known:cluster-rejoin-unreachable-store']).toBeGreaterThan(0);
  });

  it('without the known deviations, it flags a node never told it was declared down (seed 6)', async () => {
    const strict = await replaySimulation({ scenario: clusterScenarioWith(new Set()), seed: 6 });
    expect(strict.ok).toBe(false);
    expect(String(strict.error)).toMatch(/was told it holds 'trainer'.*records no holder/);
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
