/**
 * Circuit generalisation benchmark (stories260k, pronoun task): for each method and granularity and 5 seeds, a
 * circuit is found on some templates (task and template split drawn from the seed), chosen on the held-out
 * templates, and measured in-template (discovery's templates, unseen names), out-of-template (the held-out
 * templates) and on hand-written prompts of other templates and names (test/fixtures). Reported as mean ± sd.
 * The task is the generator's whole sample space; see docs/circuits-and-correction.md for n = 120.
 */
import { resolve } from 'node:path';
import { PruningSession } from '../src/engine/pruning/prune';
import { generateTask } from '../src/engine/tasks/generators';
import { readTaskFile, splitByTemplate, tokenizeTask } from '../src/engine/tasks/taskFile';
import { circuitCurve, evaluateTask } from '../src/engine/circuits/search';
import type { Granularity } from '../src/engine/circuits/search';
import type { ScoreMethod } from '../src/engine/pruning/scores';
import { markdownTable } from '../src/cli/common';

export const GENERALISATION_METHODS: ScoreMethod[] = ['lrp', 'wanda', 'gradient', 'activation'];
const SEEDS = [1, 2, 3, 4, 5];
const THRESHOLD = 0.8;
/** The pronoun generator's whole sample space (20 templates × 32 names): relevance averaged over enough samples. */
const SAMPLES = 640;

export interface GeneralisationRun {
  method: ScoreMethod;
  granularity: Granularity;
  seed: number;
  /** null: no sparsity kept the threshold on both held-out sets. */
  sparsity: number | null;
  inTemplate: number | null;
  outOfTemplate: number | null;
  otherPrompts: number | null;
}

export interface GeneralisationRow {
  method: string;
  granularity: string;
  found: number;
  seeds: number;
  sparsity: Spread;
  inTemplate: Spread;
  outOfTemplate: Spread;
  otherPrompts: Spread;
}

type Spread = { mean: number; sd: number } | null;

export async function benchCircuitGeneralisation(
  model: string,
  otherPrompts = defaultOtherPrompts(),
): Promise<{ runs: GeneralisationRun[]; rows: GeneralisationRow[] }> {
  const session = await PruningSession.open({ model });
  const runs: GeneralisationRun[] = [];
  try {
    const other = tokenizeTask(readTaskFile(otherPrompts, session.tokenizer), session.tokenizer);
    const denseOther = (await evaluateTask(session, other, 'logit_diff')).mean;
    for (const seed of SEEDS) {
      const task = generateTask('pronoun', { n: SAMPLES, seed, tokenizer: session.tokenizer });
      const split = splitByTemplate(tokenizeTask(task, session.tokenizer), { seed });
      const denseOut = (await evaluateTask(session, split.outOfTemplate, 'logit_diff')).mean;
      const denseIn = (await evaluateTask(session, split.inTemplate, 'logit_diff')).mean;
      for (const granularity of ['weights', 'neurons'] as const)
        for (const method of GENERALISATION_METHODS) {
          const curve = await circuitCurve(session, method, split.train, split.outOfTemplate, denseOut, {
            metric: 'logit_diff',
            granularity,
            ranking: 'global',
            threshold: THRESHOLD,
            inTemplate: { samples: split.inTemplate, dense: denseIn },
            resamples: 10,
            seed,
          });
          const c = curve.chosen;
          const mask = c ? curve.masks.get(c.sparsity) : undefined;
          const kept = mask ? (await evaluateTask(session, other, 'logit_diff', mask)).mean / denseOther : null;
          runs.push({
            method,
            granularity,
            seed,
            sparsity: c?.achieved ?? null,
            inTemplate: c?.inTemplateRetained ?? null,
            outOfTemplate: c?.retained ?? null,
            otherPrompts: kept,
          });
          console.log(
            `  ${granularity} ${method} seed ${seed}: ${c ? `${(c.achieved * 100).toFixed(1)}% pruned, kept in ${pct(c.inTemplateRetained)} out ${pct(c.retained)} other ${pct(kept)}` : 'no circuit'}`,
          );
        }
    }
  } finally {
    await session.close();
  }
  return { runs, rows: summarise(runs) };
}

function defaultOtherPrompts(): string {
  return resolve(__dirname, '..', 'test', 'fixtures', 'pronoun-other-templates.task.jsonl');
}

function summarise(runs: GeneralisationRun[]): GeneralisationRow[] {
  const keys = [...new Set(runs.map((r) => `${r.granularity}|${r.method}`))];
  return keys.map((k) => {
    const [granularity, method] = k.split('|');
    const mine = runs.filter((r) => r.granularity === granularity && r.method === method);
    const found = mine.filter((r) => r.sparsity !== null);
    const spread = (f: (r: GeneralisationRun) => number | null) => meanSd(found.map(f).filter((x): x is number => x !== null));
    return {
      method,
      granularity,
      found: found.length,
      seeds: mine.length,
      sparsity: spread((r) => r.sparsity),
      inTemplate: spread((r) => r.inTemplate),
      outOfTemplate: spread((r) => r.outOfTemplate),
      otherPrompts: spread((r) => r.otherPrompts),
    };
  });
}

function meanSd(xs: number[]): Spread {
  if (xs.length === 0) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, sd };
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);
const cell = (s: Spread) => (s ? `${pct(s.mean)} ± ${(s.sd * 100).toFixed(1)}` : '–');

export function generalisationTable(rows: GeneralisationRow[]): string {
  return markdownTable(
    ['granularity', 'method', 'found', 'sparsity', 'in-template kept', 'out-of-template kept', 'other prompts kept'],
    rows.map((r) => [
      r.granularity,
      r.method,
      `${r.found}/${r.seeds}`,
      cell(r.sparsity),
      cell(r.inTemplate),
      cell(r.outOfTemplate),
      cell(r.otherPrompts),
    ]),
  );
}
