/**
 * The one Prometheus registry of a zbmd process (prom-client). Every layer registers its
 * metrics here, so one `/metrics` endpoint shows them all: the runtime's, training's and
 * serving's. This module imports no other layer of zbmd, so any layer may record into it.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { counter, metricsRegistry } from 'zbmd/observe';
 *
 * const requests = counter('example_requests_total', 'Inference requests', ['model']);
 * requests.inc({ model: 'mnist' });
 * assert.match(await metricsRegistry.metrics(), /example_requests_total\{model="mnist"\} 1/);
 * // or register a metric you built yourself: new Gauge({ ..., registers: [metricsRegistry] })
 * ```
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The shared registry; `/metrics` (`--metrics-port`) serves what it holds. */
export const metricsRegistry = new Registry();

function existing<T>(name: string, kind: new (...args: never[]) => T): T | undefined {
  const found = metricsRegistry.getSingleMetric(name);
  if (found === undefined) return undefined;
  if (!(found instanceof kind)) throw new TypeError(`metric ${name} is already registered as another type`);
  return found;
}

/** prom-client's `collect` option from a callback that takes the metric (none when undefined). */
function collectHook<M>(collect: ((metric: M) => void) | undefined): { collect?: (this: M) => void } {
  return collect === undefined
    ? {}
    : {
        collect(this: M) {
          collect(this);
        },
      };
}

/**
 * The counter named `name`, created in the shared registry on first use; `collect` runs at each
 * scrape (prom-client's collect), to read a value kept elsewhere.
 */
export function counter<L extends string = string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  collect?: (metric: Counter<L>) => void,
): Counter<L> {
  return (
    (existing(name, Counter) as Counter<L> | undefined) ??
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [metricsRegistry],
      ...collectHook(collect),
    })
  );
}

/** The gauge named `name`, created in the shared registry on first use. */
export function gauge<L extends string = string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  collect?: (metric: Gauge<L>) => void,
): Gauge<L> {
  return (
    (existing(name, Gauge) as Gauge<L> | undefined) ??
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [metricsRegistry],
      ...collectHook(collect),
    })
  );
}

/** The histogram named `name`, created in the shared registry on first use. */
export function histogram<L extends string = string>(
  name: string,
  help: string,
  buckets: readonly number[],
  labelNames: readonly L[] = [],
): Histogram<L> {
  return (
    (existing(name, Histogram) as Histogram<L> | undefined) ??
    new Histogram<L>({ name, help, buckets: [...buckets], labelNames, registers: [metricsRegistry] })
  );
}
