import { guardOf, TaggedError } from '../internal/errors.js';
import type { FaultKind } from './FaultInjector.js';
import { FAULT_KINDS } from './FaultInjector.js';

/**
 * Which decision branches a scenario's runs reached. A scenario calls `hit('transient-kept')`
 * where its system (or its reference model) took a branch; the runner adds up the hits over all
 * seeds, so a report can say that a branch was never exercised instead of passing in silence.
 *
 * Limit: at most `COVERAGE_MAX_BRANCHES` distinct branch names per run; a scenario that names
 * more (a name built from data, say) gets `InvalidCoverageBranch`, a bug in the scenario.
 */
export class Coverage {
  private readonly counts = new Map<string, number>();

  /** Counts one pass through `branch` (a short lowercase name, e.g. 'restart-one_for_all'). */
  hit(branch: string): void {
    const count = this.counts.get(branch);
    if (count === undefined && this.counts.size >= COVERAGE_MAX_BRANCHES) {
      throw new InvalidCoverageBranch(branch, `at most ${COVERAGE_MAX_BRANCHES} distinct branches per run`);
    }
    this.counts.set(branch, (count ?? 0) + 1);
  }

  /** Hits per branch in this run. */
  snapshot(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.counts);
  }
}

/** Most distinct branch names one run may report. */
export const COVERAGE_MAX_BRANCHES = 256;

export class InvalidCoverageBranch extends TaggedError('InvalidCoverageBranch') {
  constructor(
    readonly branch: string,
    readonly allowed: string,
  ) {
    super(`coverage: branch '${branch}' refused: ${allowed}`);
  }
}

export const isInvalidCoverageBranch = guardOf(InvalidCoverageBranch);

/** How often a branch (or a fault kind) was reached over a simulation's seeds. */
export interface CoverageCount {
  /** Passes in all runs together. */
  readonly hits: number;
  /** Runs that passed through it at least once. */
  readonly seeds: number;
}

/** What a simulation's seeds exercised, and what they never reached. */
export interface CoverageReport {
  /** Injected faults per kind (every kind is listed, 0 when none was injected). */
  readonly faults: Readonly<Record<FaultKind, CoverageCount>>;
  /** Branches, declared and reached, by name. */
  readonly branches: Readonly<Record<string, CoverageCount>>;
  /** Fault kinds the scenario's rates enable that no seed injected. */
  readonly unreachedFaults: readonly FaultKind[];
  /** Declared branches no seed reached. */
  readonly unreachedBranches: readonly string[];
}

/** Adds up runs' coverage (the runner's side). */
export class CoverageTally {
  private readonly faults = new Map<FaultKind, { hits: number; seeds: number }>(
    FAULT_KINDS.map((kind) => [kind, { hits: 0, seeds: 0 }]),
  );
  private readonly branches = new Map<string, { hits: number; seeds: number }>();

  constructor(
    private readonly declaredBranches: readonly string[],
    private readonly enabledFaults: readonly FaultKind[],
  ) {
    for (const branch of declaredBranches) this.branches.set(branch, { hits: 0, seeds: 0 });
  }

  add(faults: Readonly<Record<FaultKind, number>>, branches: Readonly<Record<string, number>>): void {
    for (const kind of FAULT_KINDS) addCount(this.faults.get(kind)!, faults[kind]);
    for (const [branch, hits] of Object.entries(branches)) {
      let count = this.branches.get(branch);
      if (count === undefined) {
        count = { hits: 0, seeds: 0 };
        this.branches.set(branch, count);
      }
      addCount(count, hits);
    }
  }

  report(): CoverageReport {
    const branchNames = [...this.branches.keys()].sort();
    return {
      faults: Object.fromEntries(this.faults) as Record<FaultKind, CoverageCount>,
      branches: Object.fromEntries(branchNames.map((name) => [name, this.branches.get(name)!])),
      unreachedFaults: this.enabledFaults.filter((kind) => this.faults.get(kind)!.hits === 0),
      unreachedBranches: this.declaredBranches.filter((branch) => this.branches.get(branch)!.hits === 0),
    };
  }
}

function addCount(count: { hits: number; seeds: number }, hits: number): void {
  if (hits <= 0) return;
  count.hits += hits;
  count.seeds++;
}
