/**
 * Built-in task generators, seeded: the same kind, n and seed give the same file everywhere.
 *
 * - `pronoun`: a story introduces a boy or a girl by name, the prompt stops where a subject pronoun comes
 *   next; target the pronoun that agrees (" he" / " she"), foil the other. Balanced boys / girls.
 * - `ioi` (indirect-object identification): two people, then the repeated one (S) gives something to the
 *   other (IO); target " IO", foil " S". Both name orders (ABBA, BABA) occur.
 *
 * Given a tokenizer, targets and foils are checked to be single tokens after their prompts; the IOI names
 * are restricted to those that are (names in the prompt may be several tokens).
 */
import { LrpLensError } from '../errors';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadTokenizer, resolveModel } from '../runtime/model';
import type { TokenizerLike } from '../runtime/model';
import { mulberry32, pick, randomInt } from '../random';
import { DEFAULT_TASK_SAMPLES } from './taskDefaults';
import { singleTokenId, tokenizeTask, writeTaskFile } from './taskFile';
import type { TaskFile, TaskSample } from './taskFile';

export type TaskKind = 'ioi' | 'pronoun';
export const TASK_KINDS: readonly TaskKind[] = ['ioi', 'pronoun'];

export interface GenerateOptions {
  /** Default: DEFAULT_TASK_SAMPLES, or the generator's whole space where that is smaller. */
  n?: number;
  seed?: number;
  /** The model's tokenizer: targets and foils are checked (and IOI names chosen) to be single tokens. */
  tokenizer?: TokenizerLike;
}

/** Names TinyStories uses; discovery holds some out (see splitByTemplate), so there are many. */
export const BOY_NAMES = [
  'Tom',
  'Tim',
  'Ben',
  'Sam',
  'Max',
  'Jack',
  'Timmy',
  'Bob',
  'Joe',
  'Billy',
  'Paul',
  'Ted',
  'Ron',
  'Luke',
  'Adam',
  'Nick',
];
export const GIRL_NAMES = [
  'Lily',
  'Sue',
  'Amy',
  'Anna',
  'Mia',
  'Lucy',
  'Sara',
  'Jane',
  'Kate',
  'Emma',
  'Mary',
  'Ann',
  'Sally',
  'Jen',
  'Lisa',
  'Meg',
];

/**
 * Pronoun templates: {name}, {noun} ("boy" / "girl") and {pos} ("his" / "her"). Each ends where the subject
 * pronoun comes next. Many and varied, so a circuit can be found on some and measured on others. Chosen so
 * stories260k gets each right for both genders (see test/unit/taskGenerators.test.ts): it reads gender from
 * "boy"/"girl" and from the name; a template that names the child without either ("{name} went to the park.
 * Then") leaves it at chance for boys — it says " she".
 */
export const PRONOUN_TEMPLATES = [
  'Once upon a time, there was a little {noun} named {name}. One day,',
  'Once upon a time, there was a little {noun} named {name}. {name} loved to play outside. One day,',
  'There was a {noun} named {name}. Every day,',
  'Once upon a time, there was a {noun} called {name}. One morning,',
  'One day, a little {noun} named {name} saw a big tree. Then',
  '{name} was a happy little {noun}. When',
  'A little {noun} named {name} had a red ball. Then',
  'Once upon a time, there was a {noun}. The {noun} was named {name}. One day,',
  '{name} loved {pos} dog very much. Every day,',
  'The little {noun} {name} was very happy. That night,',
  'Once there was a kind {noun} called {name}. Every morning,',
  '{name} was a brave {noun}. One day,',
  'In a small house lived a {noun} named {name}. Every night,',
  'A {noun} named {name} found a shiny rock. Then',
  '{name} was a little {noun} who loved to draw. One day,',
  'Once upon a time, a {noun} named {name} lived near the sea. Every day,',
  'The {noun}, {name}, wanted to fly a kite. So',
  'There once was a curious {noun} named {name}. One day,',
  '{name} was a good {noun}. After dinner,',
  'The {noun} named {name} went to the park. At the park,',
];

/** IOI templates: {a} and {b} introduce the two people, {s} repeats the subject, {place} and {object}. */
export const IOI_TEMPLATES = [
  'When {a} and {b} went to the {place}, {s} gave a {object} to',
  'After {a} and {b} got to the {place}, {s} handed the {object} to',
  '{a} and {b} found a {object} at the {place}. {s} gave it to',
  'While {a} and {b} were playing at the {place}, {s} threw the {object} to',
  'One day, {a} and {b} went to the {place}. {s} wanted to give the {object} to',
];
export const IOI_NAMES = [...new Set([...BOY_NAMES, ...GIRL_NAMES, 'Mary', 'John'])];
export const IOI_PLACES = ['park', 'store', 'school', 'beach', 'zoo', 'garden', 'lake', 'farm'];
export const IOI_OBJECTS = ['ball', 'toy', 'drink', 'book', 'flower', 'cookie', 'hat', 'kite'];

export function generateTask(kind: TaskKind, opts: GenerateOptions): TaskFile {
  if (kind === 'pronoun') return pronounTask(opts);
  if (kind === 'ioi') return ioiTask(opts);
  throw new LrpLensError('bad-argument', `Unknown task kind '${String(kind)}'; use one of ${TASK_KINDS.join(', ')}.`);
}

export function pronounTask(opts: GenerateOptions): TaskFile {
  const rand = mulberry32(opts.seed ?? 0);
  const space = PRONOUN_TEMPLATES.length * (BOY_NAMES.length + GIRL_NAMES.length);
  const samples = distinctSamples(opts.n, space, 'pronoun', (i) => {
    const girl = i % 2 === 1;
    const name = pick(rand, girl ? GIRL_NAMES : BOY_NAMES);
    const template = randomInt(rand, PRONOUN_TEMPLATES.length);
    const prompt = fill(PRONOUN_TEMPLATES[template], { name, noun: girl ? 'girl' : 'boy', pos: girl ? 'her' : 'his' });
    return { prompt, target: girl ? ' she' : ' he', foil: girl ? ' he' : ' she', meta: { gender: girl ? 'girl' : 'boy', name, template } };
  });
  const task: TaskFile = {
    header: {
      name: 'pronoun',
      metric: 'logit_diff',
      kind: 'pronoun',
      description: 'Gendered pronoun: after a boy\'s name " he", after a girl\'s " she".',
    },
    samples,
  };
  checkTokens(task, opts.tokenizer, 'the pronoun task needs " he" and " she" to be single tokens of the model');
  return task;
}

export function ioiTask(opts: GenerateOptions): TaskFile {
  const rand = mulberry32(opts.seed ?? 0);
  const names = opts.tokenizer ? singleTokenNames(opts.tokenizer) : IOI_NAMES;
  const space = IOI_TEMPLATES.length * names.length * (names.length - 1) * IOI_PLACES.length * IOI_OBJECTS.length * 2;
  const samples = distinctSamples(opts.n, space, 'ioi', () => {
    const io = pick(rand, names);
    const s = pick(
      rand,
      names.filter((x) => x !== io),
    );
    const abba = rand() < 0.5;
    const template = randomInt(rand, IOI_TEMPLATES.length);
    const prompt = fill(IOI_TEMPLATES[template], {
      a: abba ? io : s,
      b: abba ? s : io,
      s,
      place: pick(rand, IOI_PLACES),
      object: pick(rand, IOI_OBJECTS),
    });
    return { prompt, target: ` ${io}`, foil: ` ${s}`, meta: { io, s, order: abba ? 'ABBA' : 'BABA', template } };
  });
  const task: TaskFile = {
    header: {
      name: 'ioi',
      metric: 'logit_diff',
      kind: 'ioi',
      description: 'Indirect-object identification: the name that did not repeat receives the object.',
    },
    samples,
  };
  checkTokens(task, opts.tokenizer, 'IOI targets must be single tokens');
  return task;
}

/** IOI names that the tokenizer reads as one token where they are the target. */
function singleTokenNames(tok: TokenizerLike): string[] {
  const probe = fill(IOI_TEMPLATES[0], { a: 'Tom', b: 'Ben', s: 'Ben', place: 'park', object: 'ball' });
  const names = IOI_NAMES.filter((n) => singleTokenId(tok, probe, ` ${n}`) !== undefined);
  if (names.length < 2) {
    throw new LrpLensError(
      'bad-argument',
      `IOI needs at least two names that are single tokens of this tokenizer; of ${IOI_NAMES.join(', ')} only ${names.join(', ') || 'none'} ${names.length === 1 ? 'is' : 'are'}. Write the task by hand with names this model knows as one token.`,
    );
  }
  return names;
}

/** Samples drawn until n distinct prompts exist (duplicates would leak across the train / held-out split). */
function distinctSamples(
  requested: number | undefined,
  space: number,
  kind: string,
  draw: (i: number) => Omit<TaskSample, 'line'>,
): TaskSample[] {
  const n = requested ?? Math.min(DEFAULT_TASK_SAMPLES, space);
  if (!Number.isInteger(n) || n < 1) throw new LrpLensError('bad-argument', `The number of samples must be a positive integer (got ${n}).`);
  if (n > space)
    throw new LrpLensError('bad-argument', `The ${kind} generator has only ${space} distinct samples; ask for at most ${space}.`);
  const seen = new Set<string>();
  const out: TaskSample[] = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > n * 200) throw new LrpLensError('bad-argument', `Could not draw ${n} distinct ${kind} samples; ask for fewer.`);
    const s = draw(out.length);
    if (seen.has(s.prompt)) continue;
    seen.add(s.prompt);
    out.push({ ...s, line: out.length + 2 });
  }
  return out;
}

function checkTokens(task: TaskFile, tok: TokenizerLike | undefined, what: string): void {
  if (!tok) return;
  try {
    tokenizeTask(task, tok, `generated ${task.header.name} task`);
  } catch (err) {
    throw new LrpLensError('bad-argument', `${what}: ${(err as Error).message}`, err);
  }
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => values[k]);
}

/** Generates a task and writes it to `out`; with a model, targets and foils are checked against its tokenizer. */
export async function generateTaskFile(o: {
  kind: TaskKind;
  n?: number;
  seed?: number;
  out: string;
  model?: string;
  offline?: boolean;
}): Promise<{ path: string; samples: number }> {
  const tokenizer = o.model ? await loadTokenizer(await resolveModel(o.model, { offline: o.offline })) : undefined;
  const task = generateTask(o.kind, { n: o.n, seed: o.seed, tokenizer });
  mkdirSync(dirname(o.out), { recursive: true });
  writeTaskFile(o.out, task);
  return { path: o.out, samples: task.samples.length };
}
