/**
 * The math of sharded data-parallel steps, the part that makes the result independent of how
 * many workers there are and of who computes what.
 *
 * A step's global batch of B samples is cut into a fixed number K of shards (contiguous rows,
 * sizes differing by at most one: shard k holds rows [floor(kB/K), floor((k+1)B/K))). A shard's
 * gradient is that of the shard's summed cross-entropy times 1/B, so the shards' gradients add up
 * to the gradient of the mean loss over the whole batch. They are added by a fixed binary tree over
 * shard index (`reduceTree`: the sum over [lo, hi) is the sum over [lo, mid) plus the sum over
 * [mid, hi), mid = floor((lo + hi) / 2)), so the same K vectors always meet in the same order:
 * one process, two workers or eight, and any reassignment after a loss, give the same bits.
 *
 * A worker that holds every shard of a subtree may send the subtree's sum instead of its leaves:
 * `TreeNode` names a subtree by its shard range, and `reduceTree` accepts any set of nodes that
 * covers [0, K) exactly once along the tree's own cuts.
 */

/** The shard ranges of the tree: [lo, hi). */
export interface TreeNode {
  readonly lo: number;
  readonly hi: number;
}

/** Rows [start, end) of a batch of `batchSize` rows that shard `shard` of `shards` holds. */
export function shardRows(batchSize: number, shards: number, shard: number): { start: number; end: number } {
  return {
    start: Math.floor((shard * batchSize) / shards),
    end: Math.floor(((shard + 1) * batchSize) / shards),
  };
}

/** The node's key in maps: `lo-hi`. */
export function nodeKey(node: TreeNode): string {
  return `${node.lo}-${node.hi}`;
}

function middle(lo: number, hi: number): number {
  return (lo + hi) >> 1;
}

/**
 * The largest subtrees of the reduction tree over [0, shards) whose shards all lie in `held`
 * (shard indices), in shard order: what a worker holding those shards sends.
 */
export function coveringNodes(shards: number, held: ReadonlySet<number>): TreeNode[] {
  const nodes: TreeNode[] = [];
  const visit = (lo: number, hi: number): void => {
    let all = true;
    let any = false;
    for (let shard = lo; shard < hi; shard++) {
      if (held.has(shard)) any = true;
      else all = false;
    }
    if (!any) return;
    if (all) {
      nodes.push({ lo, hi });
      return;
    }
    const mid = middle(lo, hi);
    visit(lo, mid);
    visit(mid, hi);
  };
  visit(0, shards);
  return nodes;
}

/** Adds `right` into `left` element by element (left += right) and returns `left`. */
function addInto(left: Float32Array, right: Float32Array): Float32Array {
  for (let index = 0; index < left.length; index++) left[index] += right[index];
  return left;
}

/**
 * The sum over shards [lo, hi) by the fixed tree, from `parts` keyed by `nodeKey` (leaves or
 * whole subtrees). Returns undefined while a part of the cover is missing. The vectors of
 * `parts` are consumed (summed into in place).
 */
export function reduceRange(
  lo: number,
  hi: number,
  parts: ReadonlyMap<string, Float32Array>,
): Float32Array | undefined {
  const own = parts.get(`${lo}-${hi}`);
  if (own !== undefined) return own;
  if (hi - lo <= 1) return undefined;
  const mid = middle(lo, hi);
  const left = reduceRange(lo, mid, parts);
  if (left === undefined) return undefined;
  const right = reduceRange(mid, hi, parts);
  if (right === undefined) return undefined;
  return addInto(left, right);
}

/** The sum over all shards [0, shards) by the fixed tree (see `reduceRange`). */
export function reduceTree(
  shards: number,
  parts: ReadonlyMap<string, Float32Array>,
): Float32Array | undefined {
  return reduceRange(0, shards, parts);
}

/** True when `parts` (keys `lo-hi`) cover [0, shards) along the tree (so `reduceTree` succeeds). */
export function treeComplete(shards: number, parts: ReadonlySet<string>): boolean {
  const covered = (lo: number, hi: number): boolean => {
    if (parts.has(`${lo}-${hi}`)) return true;
    if (hi - lo <= 1) return false;
    const mid = middle(lo, hi);
    return covered(lo, mid) && covered(mid, hi);
  };
  return covered(0, shards);
}

/** The same tree over plain numbers, on [lo, hi) (a step's loss from its shards' losses). */
export function reduceNumbersRange(lo: number, hi: number, values: ReadonlyMap<string, number>): number {
  const own = values.get(`${lo}-${hi}`);
  if (own !== undefined) return own;
  if (hi - lo <= 1) return Number.NaN;
  const mid = middle(lo, hi);
  return reduceNumbersRange(lo, mid, values) + reduceNumbersRange(mid, hi, values);
}

export function reduceNumbers(shards: number, values: ReadonlyMap<string, number>): number {
  return reduceNumbersRange(0, shards, values);
}

/**
 * Splits shards [0, shards) among `workers` (sorted names) in contiguous runs, the first
 * `shards % n` workers taking one more: worker i of n holds shards [floor(iK/n), floor((i+1)K/n)).
 */
export function assignShards(shards: number, workers: readonly string[]): string[] {
  const owners: string[] = new Array(shards);
  const count = workers.length;
  for (let index = 0; index < count; index++) {
    const { start, end } = shardRows(shards, count, index);
    for (let shard = start; shard < end; shard++) owners[shard] = workers[index];
  }
  return owners;
}
