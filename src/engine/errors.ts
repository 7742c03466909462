/**
 * Engine errors: one class, a `reason` that callers can branch on, and a message that names the
 * problem and the fix. Plain data, so it crosses the worker boundary as JSON.
 */
export type LrpErrorReason =
  | 'model-not-found'
  | 'model-corrupt'
  | 'not-causal-lm'
  | 'unsupported-op'
  | 'unsupported-graph'
  | 'prompt-too-long'
  | 'unknown-token'
  | 'bad-argument'
  | 'runtime-failure'
  | 'access-denied'
  | 'network-failure'
  | 'disk-full'
  | 'insufficient-memory'
  | 'cancelled';

export class LrpLensError extends Error {
  override readonly name = 'LrpLensError';
  constructor(
    readonly reason: LrpErrorReason,
    message: string,
    readonly original?: unknown,
  ) {
    super(message);
  }

  static is(err: unknown, reason?: LrpErrorReason): err is LrpLensError {
    return err instanceof LrpLensError && (reason === undefined || err.reason === reason);
  }

  toJSON(): { reason: LrpErrorReason; message: string } {
    return { reason: this.reason, message: this.message };
  }
}
