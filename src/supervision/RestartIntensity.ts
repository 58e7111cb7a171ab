/**
 * OTP's restart intensity: at most `intensity` restarts within any window of `periodMs`
 * milliseconds. The restart that would be one too many is refused, and the supervisor then gives
 * up (stops its children and exits with `shutdown`).
 *
 * Limit: at most `intensity + 1` timestamps are kept; older ones have left the window or are not
 * needed to decide. A restart at time `t` stays in the window while `t >= now - periodMs`, as
 * OTP's `add_restart` keeps restarts `R >= Now - Period`: a restart exactly `periodMs` old still
 * counts, one `periodMs + 1` old does not.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { RestartIntensity } from 'zbmd/supervision';
 *
 * const window = new RestartIntensity(2, 1000);
 * assert.equal(window.record(0), true); // 1 restart in the window
 * assert.equal(window.record(10), true); // 2
 * assert.equal(window.record(20), false); // a 3rd restart within 1000 ms is one too many
 * ```
 */
export class RestartIntensity {
  /** Restart times, oldest first, as a ring of `intensity + 1` slots. */
  private readonly times: number[];
  private head = 0;
  private length = 0;

  constructor(
    readonly intensity: number,
    readonly periodMs: number,
  ) {
    this.times = new Array(intensity + 1).fill(0);
  }

  /** Records a restart at `nowMs`; false when it exceeds the intensity (the supervisor must give up). */
  record(nowMs: number): boolean {
    this.forgetBefore(nowMs);
    const capacity = this.times.length;
    if (this.length === capacity) {
      // full: the oldest drops out (the window is exceeded anyway)
      this.head = (this.head + 1) % capacity;
      this.length--;
    }
    this.times[(this.head + this.length) % capacity] = nowMs;
    this.length++;
    return this.length <= this.intensity;
  }

  /** Restarts within the window ending at `nowMs`. */
  count(nowMs: number): number {
    this.forgetBefore(nowMs);
    return this.length;
  }

  private forgetBefore(nowMs: number): void {
    const capacity = this.times.length;
    while (this.length > 0 && this.times[this.head] < nowMs - this.periodMs) {
      this.head = (this.head + 1) % capacity;
      this.length--;
    }
  }
}
