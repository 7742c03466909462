/**
 * A problem with what the user gave a command (no file chosen, a bad argument, an empty or binary prompt file),
 * found in the extension host before the engine is asked. Not an engine error: the engine never saw it. It is
 * reported like one, with the reason 'bad-argument'.
 */
import { EngineError } from './worker/client';

export class InputError extends Error {
  override readonly name = 'InputError';
  readonly reason = 'bad-argument' as const;
}

/** Whatever went wrong while reading the user's input, as an input error (an engine error stays what it is). */
export function asInputError(err: unknown): EngineError | InputError {
  if (err instanceof EngineError || err instanceof InputError) return err;
  return new InputError(err instanceof Error ? err.message : String(err));
}
