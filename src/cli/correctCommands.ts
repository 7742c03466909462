/**
 * `lrp-lens correct`: targeted correction. Scores components by R̄_general − R̄_undesired (or a baseline's
 * difference), prunes the lowest `count`, measures the behaviour metric on held-out undesired prompts and
 * perplexity on evaluation text for each count, and saves the chosen point as a mask with the curve in its
 * manifest. The `--json` report (schema `lrp-lens/correct@1`) is documented in docs/formats.md.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { Device } from '../engine/runtime/session';
import { runCorrection } from '../engine/correction/correctionRun';
import type { CorrectReport } from '../engine/correction/correctionRun';
import { defaultModel, markdownTable, writeJson } from './common';
import { progressDisplay } from './progressDisplay';
import { executionOption, logExecution } from './executionOption';
import type { ExecutionChoice } from '../engine/runtime/execution';
import { checkOutputPaths, jsonOutput, maskOutputs } from '../engine/outputPaths';

interface CorrectOptions {
  model: string;
  device: Device;
  execution: ExecutionChoice;
  undesired: string;
  general: string;
  heldOut?: string;
  granularity: string;
  layers?: string;
  count?: number;
  counts?: number[];
  method: string;
  metric: string;
  eval?: string;
  samples?: number;
  seqLen: number;
  evalSeqLen: number;
  steps: number;
  maxPerplexityRise: number;
  out: string;
  json?: string;
}

function countList(v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1))
    throw new InvalidArgumentError(`'${v}': counts are whole numbers ≥ 1, e.g. 10,20,50,100.`);
  return list;
}

function countArg(v: string): number {
  return countList(v)[0];
}

async function correct(o: CorrectOptions): Promise<void> {
  checkOutputPaths(
    [...maskOutputs('--out', o.out), ...jsonOutput(o.json)],
    [
      { flag: '--undesired', path: o.undesired },
      { flag: '--general', path: o.general },
      o.heldOut ? { flag: '--held-out', path: o.heldOut } : undefined,
      o.eval ? { flag: '--eval', path: o.eval } : undefined,
    ],
  );
  const report = await runCorrection(o, { onProgress: progressDisplay().stage, onExecution: logExecution });
  if (o.json) writeJson(o.json, report);
  if (o.json !== '-') printCurve(report);
}

function printCurve(report: CorrectReport): void {
  const rows = [['dense', '0', report.dense.behaviour.toFixed(4), report.dense.perplexity.toFixed(3), '']];
  for (const p of report.points)
    rows.push([report.method, String(p.count), p.behaviour.toFixed(4), p.perplexity.toFixed(3), `${(100 * p.perplexityRise).toFixed(1)}%`]);
  console.log(markdownTable(['method', 'count', report.metric.kind, 'perplexity', 'Δ perplexity'], rows));
  const chosen = report.chosen;
  console.log(
    `chose ${chosen.count}${chosen.withinBudget ? '' : ' (no count kept perplexity within the budget; the smallest was kept)'}: ${chosen.mask}`,
  );
}

export function registerCorrection(program: Command): void {
  program
    .command('correct')
    .description('prune the components that drive an undesired behaviour (R̄_general − R̄_undesired), measure behaviour and perplexity')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(executionOption())
    .requiredOption(
      '--undesired <file>',
      'prompts that trigger the behaviour: *.prompts.jsonl (target = undesired continuation) or one prompt a line',
    )
    .requiredOption('--general <file>', 'general text (or *.prompts.jsonl) whose ability should stay')
    .option('--held-out <file>', 'prompts to measure the behaviour on (default: the undesired prompts)')
    .addOption(new Option('--granularity <g>', 'what to prune').choices(['neurons', 'weights', 'heads']).default('neurons'))
    .option('--layers <spec>', 'which linear layers: kinds and/or block range, e.g. gate,up or up:2-4 (default: all inside the blocks)')
    .option('--count <n>', 'how many components to prune', countArg)
    .option('--counts <list>', 'a sweep of counts, e.g. 10,20,50,100 (the best within the perplexity budget is saved)', countList)
    .addOption(new Option('--method <m>', 'scores').choices(['lrp', 'wanda', 'gradient']).default('lrp'))
    .option('--metric <m>', 'repetition | word-rate[:WORDS] | command:CMD', 'repetition')
    .option('--eval <file>', 'evaluation text for perplexity (default: the general set)')
    .option('--samples <n>', 'at most this many general samples', Number)
    .option('--seq-len <n>', 'general window length in tokens', Number, 128)
    .option('--eval-seq-len <n>', 'evaluation window length in tokens', Number, 128)
    .option('--steps <n>', 'greedy tokens generated for undesired prompts without a continuation', Number, 50)
    .option('--max-perplexity-rise <f>', 'perplexity budget when choosing from --counts (fraction of dense)', Number, 0.1)
    .requiredOption('--out <mask>', 'mask path (writes MASK.safetensors + MASK.json)')
    .option('--json <out>', "write the report as JSON ('-' for stdout)")
    .action(correct);
}
