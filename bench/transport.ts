/**
 * The two ways a batch of messages can reach another thread, measured bare (no actors), as the
 * in-run reference for the cross-thread actor figures: MessagePort posts of batches (what
 * src/actor/internal/ThreadPool.ts uses) and a SharedArrayBuffer ring with Atomics. The three
 * SharedArrayBuffer round trips are the legs of a wake-up (src/actor/internal/Ring.ts):
 * `Atomics.waitAsync` on this side (an event-loop wake-up), `Atomics.wait` on both sides (a
 * futex wake-up each way), and both sides spinning (the cache line going back and forth).
 */
import { Worker } from 'node:worker_threads';

/** Atomics.waitAsync (Node >= 16; missing from the ES2023 lib types this project compiles against). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
    ): { async: boolean; value: Promise<unknown> | string };
  }
).waitAsync;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { mode, count } = workerData;
if (mode === 'port-echo') parentPort.on('message', (message) => parentPort.postMessage(message));
if (mode === 'port-count') {
  let seen = 0;
  parentPort.on('message', (batch) => { seen += batch.length; if (seen >= count) parentPort.postMessage(seen); });
}
if (mode === 'sab-echo') {
  // slot 0: sequence number; the worker blocks in Atomics.wait (a worker may block), answers +1
  const cell = new Int32Array(workerData.sab);
  for (let expected = 1; expected <= count * 2; expected += 2) {
    while (Atomics.load(cell, 0) !== expected) Atomics.wait(cell, 0, expected - 1);
    Atomics.store(cell, 0, expected + 1);
    Atomics.notify(cell, 0);
  }
}
if (mode === 'sab-spin-echo') {
  const cell = new Int32Array(workerData.sab);
  for (let expected = 1; expected <= count * 2; expected += 2) {
    while (Atomics.load(cell, 0) !== expected);
    Atomics.store(cell, 0, expected + 1);
  }
}
if (mode === 'spin-work') {
  // pure computation, no memory traffic: what a core gives, for parallelCapacity
  parentPort.once('message', (iterations) => {
    const start = performance.now();
    let x = 0;
    for (let i = 0; i < iterations; i++) x = (x * 1664525 + 1013904223) | 0;
    parentPort.postMessage([performance.now() - start, x]);
  });
}
if (mode === 'sab-count') {
  // a single-producer single-consumer ring: [head, tail] Int32 then Float64 slots
  const index = new Int32Array(workerData.sab, 0, 2);
  const slots = new Float64Array(workerData.sab, 8);
  let seen = 0;
  let sum = 0;
  while (seen < count) {
    const head = Atomics.load(index, 0);
    let tail = Atomics.load(index, 1);
    if (head === tail) { Atomics.wait(index, 0, head); continue; }
    while (tail !== head) { sum += slots[tail % slots.length]; tail++; seen++; }
    Atomics.store(index, 1, tail);
    Atomics.notify(index, 1);
  }
  parentPort.postMessage(sum);
}
`;

function startWorker(mode: string, data: Record<string, unknown>): Worker {
  return new Worker(WORKER, { eval: true, workerData: { mode, ...data } });
}

/** Round trips of one message through a MessagePort. Returns ns per round trip. */
export async function portRoundTrip(roundTrips: number): Promise<number> {
  const worker = startWorker('port-echo', {});
  let done = 0;
  const finished = new Promise<number>((resolve) => {
    let start = 0;
    worker.on('message', (n: number) => {
      if (n === 100) start = performance.now();
      if (n === 100 + roundTrips) resolve(performance.now() - start);
      else worker.postMessage(n + 1);
    });
  });
  worker.postMessage(0);
  done = await finished;
  await worker.terminate();
  return (done * 1e6) / roundTrips;
}

/** Round trips through a SharedArrayBuffer cell (Atomics.waitAsync here, Atomics.wait there). */
export async function sabRoundTrip(roundTrips: number): Promise<number> {
  const sab = new SharedArrayBuffer(4);
  const cell = new Int32Array(sab);
  const worker = startWorker('sab-echo', { sab, count: roundTrips + 100 });
  let start = 0;
  for (let trip = 0; trip < roundTrips + 100; trip++) {
    if (trip === 100) start = performance.now();
    const sent = trip * 2 + 1;
    Atomics.store(cell, 0, sent);
    Atomics.notify(cell, 0);
    const wait = waitAsync(cell, 0, sent);
    if (wait.async) await wait.value;
  }
  const elapsed = performance.now() - start;
  await worker.terminate();
  return (elapsed * 1e6) / roundTrips;
}

/**
 * Round trips through a SharedArrayBuffer cell with both sides blocking in `Atomics.wait`
 * (`spin` false: a futex wake-up each way) or both busy-polling it (`spin` true). Returns ns per
 * round trip.
 */
export async function sabBlockingRoundTrip(roundTrips: number, spin: boolean): Promise<number> {
  const sab = new SharedArrayBuffer(4);
  const cell = new Int32Array(sab);
  const worker = startWorker(spin ? 'sab-spin-echo' : 'sab-echo', { sab, count: roundTrips + 100 });
  await new Promise<void>((resolve) => worker.once('online', () => resolve()));
  let start = 0;
  for (let trip = 0; trip < roundTrips + 100; trip++) {
    if (trip === 100) start = performance.now();
    const sent = trip * 2 + 1;
    Atomics.store(cell, 0, sent);
    if (!spin) Atomics.notify(cell, 0);
    // bounded, so a lost worker cannot hang the bench
    const deadline = performance.now() + 1000;
    while (Atomics.load(cell, 0) === sent) {
      if (!spin) Atomics.wait(cell, 0, sent, 1000);
      if (performance.now() > deadline) throw new Error('bench: the echo worker stopped answering');
    }
  }
  const elapsed = performance.now() - start;
  await worker.terminate();
  return (elapsed * 1e6) / roundTrips;
}

/** `count` numbers posted in batches of `batch` on a MessagePort. Returns numbers per second. */
export async function portStream(count: number, batch = 5461): Promise<number> {
  const worker = startWorker('port-count', { count });
  const seen = new Promise<void>((resolve) => worker.once('message', () => resolve()));
  await new Promise<void>((resolve) => worker.once('online', () => resolve()));
  const start = performance.now();
  for (let sent = 0; sent < count; sent += batch) {
    const items: number[] = [];
    for (let i = 0; i < batch && sent + i < count; i++) items.push(1, 7, sent + i); // an actor send: 3 slots
    worker.postMessage(items.filter((_, slot) => slot % 3 === 2));
  }
  await seen;
  const elapsed = performance.now() - start;
  await worker.terminate();
  return count / (elapsed / 1000);
}

/** `count` numbers through a SharedArrayBuffer ring of 65,536 slots. Returns numbers per second. */
export async function sabStream(count: number): Promise<number> {
  const capacity = 65_536;
  const sab = new SharedArrayBuffer(8 + 8 * capacity);
  const index = new Int32Array(sab, 0, 2);
  const slots = new Float64Array(sab, 8);
  const worker = startWorker('sab-count', { sab, count });
  const done = new Promise<void>((resolve) => worker.once('message', () => resolve()));
  await new Promise<void>((resolve) => worker.once('online', () => resolve()));
  const start = performance.now();
  let head = 0;
  while (head < count) {
    const tail = Atomics.load(index, 1);
    if (head - tail === capacity) {
      const wait = waitAsync(index, 1, tail);
      if (wait.async) await wait.value;
      continue;
    }
    const end = Math.min(count, tail + capacity);
    for (; head < end; head++) slots[head % capacity] = head;
    Atomics.store(index, 0, head);
    Atomics.notify(index, 0);
  }
  await done;
  const elapsed = performance.now() - start;
  await worker.terminate();
  return count / (elapsed / 1000);
}

/**
 * How much two threads get done at once compared with one: the same pure computation on one
 * worker, then on two workers at the same time; 2 * one's time / the pair's wall time. 2.0 is two
 * free cores; on a shared or throttled machine it is less, and no thread speedup can exceed it.
 * The in-run reference for `skynet_thread_speedup`.
 */
export async function parallelCapacity(iterations = 60_000_000): Promise<number> {
  const run = async (threads: number): Promise<number> => {
    const workers = Array.from({ length: threads }, () => startWorker('spin-work', {}));
    await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('online', resolve))));
    const start = performance.now();
    await Promise.all(
      workers.map((worker) => {
        const done = new Promise((resolve) => worker.once('message', resolve));
        worker.postMessage(iterations);
        return done;
      }),
    );
    const elapsed = performance.now() - start;
    await Promise.all(workers.map((worker) => worker.terminate()));
    return elapsed;
  };
  await run(1); // compiles the loop
  const one = await run(1);
  const two = await run(2);
  return (2 * one) / two;
}

export async function transportFigures(quick: boolean): Promise<Record<string, number>> {
  const trips = quick ? 2000 : 20_000;
  const messages = quick ? 200_000 : 2_000_000;
  return {
    transport_port_roundtrip_ns: Math.round(await portRoundTrip(trips)),
    transport_sab_roundtrip_ns: Math.round(await sabRoundTrip(trips)),
    transport_futex_roundtrip_ns: Math.round(await sabBlockingRoundTrip(trips, false)),
    transport_spin_roundtrip_ns: Math.round(await sabBlockingRoundTrip(trips, true)),
    transport_port_batches_msgs_per_sec: Math.round(await portStream(messages)),
    transport_sab_ring_msgs_per_sec: Math.round(await sabStream(messages)),
  };
}
