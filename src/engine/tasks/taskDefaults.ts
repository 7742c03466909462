/**
 * Samples a generated task has unless asked otherwise (capped at what the generator can draw): circuits found on
 * fewer are unstable on stories260k (docs/circuits-and-correction.md: a 90%-sparse weight circuit on 1 seed of 5 at
 * 120 samples, 5 of 5 at 640).
 */
export const DEFAULT_TASK_SAMPLES = 640;
