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
  | 'out-of-memory'
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

/** What an error about a graph node names: its op type (with domain) and its name. */
export interface NamedNode {
  opType: string;
  domain: string;
  name: string;
}

/** An op (or a use of one) that canonicalisation and the rule table do not cover. */
export function unsupported(n: NamedNode, what: string): LrpLensError {
  return new LrpLensError(
    'unsupported-op',
    `Unsupported: ${what} (op ${n.domain ? `${n.domain}.` : ''}${n.opType}, node '${n.name}'). ` +
      'Report the model so a rule can be added, or re-export it with standard ONNX ops.',
  );
}
