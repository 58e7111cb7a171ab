import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { isInvalidDetectorOption, PhiAccrualDetector, phiOf } from '../../src/fault/index.js';

function detectorWith(options: ConstructorParameters<typeof PhiAccrualDetector>[0] = {}) {
  const clock = new SimulatedClock();
  return { clock, detector: new PhiAccrualDetector({ clock, ...options }) };
}

/** -log10(1 - F(y)) with the logistic F, computed the textbook way (fine for moderate y). */
function naivePhi(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  return elapsedMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
}

describe('phiOf', () => {
  it('is -log10(0.5) at the mean', () => {
    expect(phiOf(1000, 1000, 100)).toBeCloseTo(Math.log10(2), 12);
  });

  it('matches the textbook formula where that one is accurate', () => {
    for (const elapsedMs of [0, 200, 500, 900, 1000, 1100, 1300, 1500]) {
      expect(phiOf(elapsedMs, 1000, 200)).toBeCloseTo(naivePhi(elapsedMs, 1000, 200), 9);
    }
  });

  it('stays finite and keeps growing where the textbook formula overflows to Infinity', () => {
    expect(naivePhi(100_000, 1000, 100)).toBe(Number.POSITIVE_INFINITY);
    const far = phiOf(100_000, 1000, 100);
    const farther = phiOf(200_000, 1000, 100);
    expect(Number.isFinite(far)).toBe(true);
    expect(farther).toBeGreaterThan(far);
  });

  it('is tiny but positive long before the mean', () => {
    const early = phiOf(0, 100_000, 100);
    expect(early).toBeGreaterThanOrEqual(0);
    expect(early).toBeLessThan(1e-10);
  });
});

describe('PhiAccrualDetector', () => {
  it('uses the Akka defaults', () => {
    const { detector } = detectorWith();
    expect(detector.threshold).toBe(8);
    expect(detector.maxSampleSize).toBe(1000);
    expect(detector.minStdDeviationMs).toBe(100);
    expect(detector.acceptableHeartbeatPauseMs).toBe(0);
    expect(detector.firstHeartbeatEstimateMs).toBe(1000);
  });

  it('treats a peer with no heartbeat yet as available (phi 0)', () => {
    const { clock, detector } = detectorWith();
    clock.advance(1_000_000);
    expect(detector.isMonitoring).toBe(false);
    expect(detector.phi()).toBe(0);
    expect(detector.isAvailable()).toBe(true);
  });

  it('bootstraps from firstHeartbeatEstimateMs after one heartbeat (mean 1000, deviation 250)', () => {
    const { clock, detector } = detectorWith();
    detector.heartbeat();
    expect(detector.stats()).toMatchObject({ sampleCount: 2, meanMs: 1000, stdDeviationMs: 250 });
    clock.advance(1000);
    expect(detector.phi()).toBeCloseTo(Math.log10(2), 9);
    clock.advance(2000); // y = 8 deviations
    expect(detector.isAvailable()).toBe(false);
  });

  it('marks a peer available after a series of regular heartbeats', () => {
    const { clock, detector } = detectorWith();
    for (let beat = 0; beat < 20; beat++) {
      detector.heartbeat();
      clock.advance(100);
    }
    expect(detector.isAvailable()).toBe(true);
  });

  it('suspects a peer that stops, and phi rises with the silence', () => {
    const { clock, detector } = detectorWith();
    for (let beat = 0; beat < 20; beat++) {
      detector.heartbeat();
      clock.advance(1000);
    }
    const phis: number[] = [];
    for (let step = 0; step < 10; step++) {
      phis.push(detector.phi());
      clock.advance(200);
    }
    expect(phis).toEqual([...phis].sort((a, b) => a - b));
    expect(detector.isAvailable()).toBe(false);
  });

  it('accepts the configured heartbeat pause, and suspects after it', () => {
    const { clock, detector } = detectorWith({ acceptableHeartbeatPauseMs: 3000 });
    for (let beat = 0; beat < 30; beat++) {
      detector.heartbeat();
      clock.advance(1000);
    }
    clock.advance(3000); // 4 s since the last heartbeat: mean + pause
    expect(detector.isAvailable()).toBe(true);
    clock.advance(1100); // 11 minimum deviations later
    expect(detector.isAvailable()).toBe(false);
  });

  it('applies the minimum standard deviation to perfectly regular heartbeats', () => {
    const { clock, detector } = detectorWith({ maxSampleSize: 10 });
    for (let beat = 0; beat < 20; beat++) {
      detector.heartbeat();
      clock.advance(1000);
    }
    expect(detector.stats().stdDeviationMs).toBe(0);
    // With a 0 deviation any lateness would be infinitely suspicious; with the 100 ms floor
    // 50 ms late is phi ~ 0.9.
    clock.advance(50);
    expect(detector.phi()).toBeCloseTo(phiOf(1050, 1000, 100), 12);
    expect(detector.isAvailable()).toBe(true);
  });

  it('keeps only maxSampleSize intervals', () => {
    const { clock, detector } = detectorWith({ maxSampleSize: 3 });
    detector.heartbeat();
    for (const intervalMs of [100, 200, 300, 400, 500]) {
      clock.advance(intervalMs);
      detector.heartbeat();
    }
    expect(detector.stats()).toMatchObject({ sampleCount: 3, meanMs: 400 });
  });

  it('does not record the gap of a peer that rejoins after being suspected', () => {
    const { clock, detector } = detectorWith();
    for (let beat = 0; beat < 20; beat++) {
      detector.heartbeat();
      clock.advance(1000);
    }
    const before = detector.stats();
    clock.advance(60_000);
    expect(detector.isAvailable()).toBe(false);
    detector.heartbeat();
    expect(detector.isAvailable()).toBe(true);
    const after = detector.stats();
    expect(after.meanMs).toBe(before.meanMs);
    expect(after.sampleCount).toBe(before.sampleCount);
    expect(after.ignoredIntervals).toBe(1);
    clock.advance(1000);
    detector.heartbeat(); // the rhythm after rejoining counts again
    expect(detector.stats().sampleCount).toBe(before.sampleCount + 1);
  });

  it('rejects options outside their ranges, naming the option', () => {
    const cases: Array<[string, object]> = [
      ['threshold', { threshold: 0 }],
      ['maxSampleSize', { maxSampleSize: 0 }],
      ['maxSampleSize', { maxSampleSize: 2.5 }],
      ['minStdDeviationMs', { minStdDeviationMs: -1 }],
      ['acceptableHeartbeatPauseMs', { acceptableHeartbeatPauseMs: -1 }],
      ['firstHeartbeatEstimateMs', { firstHeartbeatEstimateMs: Number.NaN }],
    ];
    for (const [option, options] of cases) {
      try {
        new PhiAccrualDetector(options);
        expect.unreachable(`${option} accepted`);
      } catch (error) {
        expect(isInvalidDetectorOption(error)).toBe(true);
        expect((error as { option: string }).option).toBe(option);
      }
    }
  });

  it('property: phi never decreases while no heartbeat arrives', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 0, maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 2, maxLength: 20 }),
        fc.integer({ min: 0, max: 10_000 }),
        (intervals, probes, pauseMs) => {
          const { clock, detector } = detectorWith({ acceptableHeartbeatPauseMs: pauseMs });
          detector.heartbeat();
          for (const intervalMs of intervals) {
            clock.advance(intervalMs);
            detector.heartbeat();
          }
          let previous = detector.phi();
          for (const stepMs of probes) {
            clock.advance(stepMs);
            const phi = detector.phi();
            if (phi < previous) return false;
            previous = phi;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: windowed mean and deviation match a direct computation (ring wrap included)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.double({ min: 0.001, max: 10_000, noNaN: true }), { minLength: 0, maxLength: 60 }),
        (maxSampleSize, intervals) => {
          const { clock, detector } = detectorWith({ maxSampleSize, threshold: 1e9 });
          detector.heartbeat();
          const recorded = [750, 1250].slice(-maxSampleSize);
          let lastAt = clock.now();
          for (const intervalMs of intervals) {
            clock.advance(intervalMs);
            detector.heartbeat();
            recorded.push(clock.now() - lastAt);
            lastAt = clock.now();
          }
          const window = recorded.slice(-maxSampleSize);
          const mean = window.reduce((sum, value) => sum + value, 0) / window.length;
          const variance = window.reduce((sum, value) => sum + (value - mean) ** 2, 0) / window.length;
          const stats = detector.stats();
          const scale = Math.max(1, mean);
          return (
            stats.sampleCount === window.length &&
            Math.abs(stats.meanMs - mean) <= 1e-9 * scale &&
            Math.abs(stats.stdDeviationMs - Math.sqrt(variance)) <= 1e-3 * scale
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
