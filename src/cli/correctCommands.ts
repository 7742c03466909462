/**
 * `lrp-lens correct`: targeted correction. Scores components by R̄_general − R̄_undesired (or a baseline's
 * difference), prunes the lowest `count`, measures the behaviour metric on held-out undesired prompts and
 * perplexity on evaluation text for each count, and saves the chosen point as a mask with the curve in its
 * manifest. The `--json` report (schema `lrp-lens/correct@1`) is documented in the README.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Device } from '../engine/runtime/session';
import { PruningSession } from '../engine/pruning/prune';
import { parseWeightSelection } from '../engine/pruning/prunable';
import { modelIdentity, saveMask } from '../engine/pruning/maskFile';
import { higherIsBetter, parseBehaviourMetric } from '../engine/correction/behaviour';
import type { BehaviourMetricSpec } from '../engine/correction/behaviour';
import {
  availableComponents, checkCorrectionMethod, checkCount, checkGranularity, checkTokenizerFit, CORRECTION_AGGREGATION,
  differentialScores, generalSamples, rankComponents, readPromptSet, undesiredSamples, unknownTokenIds,
} from '../engine/correction/correct';
import type { Component, Granularity, UndesiredPrompt } from '../engine/correction/correct';
import { choosePoint, correctionSweep, measureBehaviour, wordsFor } from '../engine/correction/sweep';
import type { BehaviourProbe, CorrectionPoint } from '../engine/correction/sweep';
import { defaultModel, writeJson } from './common';
import { markdownTable } from './benchPruning';

interface CorrectOptions {
  model: string;
  device: Device;
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
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError(`'${v}': counts are whole numbers ≥ 1, e.g. 10,20,50,100.`);
  return list;
}

function countArg(v: string): number {
  return countList(v)[0];
}

interface Inputs {
  undesired: UndesiredPrompt[];
  heldOut: UndesiredPrompt[];
  general: ReturnType<PruningSession['samples']>;
  evaluation: ReturnType<PruningSession['samples']>;
  probe: BehaviourProbe;
}

function readInputs(session: PruningSession, o: CorrectOptions, spec: BehaviourMetricSpec): Inputs {
  const undesired = readPromptSet(o.undesired, 'undesired');
  const heldOut = o.heldOut ? readPromptSet(o.heldOut, 'held-out') : undesired;
  const general = session.samples(o.general, { samples: o.samples, seqLen: o.seqLen }, 'general');
  const evaluation = o.eval ? session.samples(o.eval, { seqLen: o.evalSeqLen }, 'evaluation') : general;
  const unknown = unknownTokenIds(session.folder.dir);
  const tok = session.tokenizer;
  checkTokenizerFit(undesired.map((p) => tok.encode(p.prompt + (p.continuation ?? ''))), unknown, 'undesired', o.undesired);
  checkTokenizerFit(heldOut.map((p) => tok.encode(p.prompt)), unknown, 'held-out', o.heldOut ?? o.undesired);
  checkTokenizerFit(general.samples, unknown, 'general', o.general);
  return { undesired, heldOut, general, evaluation, probe: { spec, prompts: heldOut, words: wordsFor(spec, undesired) } };
}

async function correct(o: CorrectOptions): Promise<void> {
  const method = checkCorrectionMethod(o.method);
  const granularity = checkGranularity(o.granularity);
  const spec = parseBehaviourMetric(o.metric);
  const counts = o.counts ?? [o.count ?? 100];
  const session = await PruningSession.open({ model: o.model, device: o.device, selection: parseWeightSelection(o.layers) });
  try {
    const available = availableComponents(session.weights, granularity);
    counts.forEach((c) => checkCount(c, available, granularity));
    const inputs = readInputs(session, o, spec);
    const U = await undesiredSamples(session, inputs.undesired, o.steps);
    const ranked = rankComponents(await differentialScores(session, method, generalSamples(inputs.general.samples), U), session.weights, granularity);
    const dense = await measureBehaviour(session, inputs.probe, undefined);
    const densePerplexity = (await session.perplexity(inputs.evaluation.samples)).perplexity;
    const points = await correctionSweep(session, ranked, granularity, counts, inputs.probe, inputs.evaluation.samples);
    const chosen = choosePoint(points, densePerplexity, spec, o.maxPerplexityRise);
    const curve = points.map((p) => ({ count: p.count, behaviour: p.behaviour, perplexity: p.perplexity, perplexityRise: p.perplexity / densePerplexity - 1, perLayer: p.perLayer }));
    const identity = modelIdentity(session.folder.onnxPath, session.folder.ref);
    const maskPath = resolve(o.out).replace(/\.(safetensors|json)$/, '');
    mkdirSync(dirname(maskPath), { recursive: true });
    const metric = { spec: o.metric, kind: spec.kind, higherIsBetter: higherIsBetter(spec), words: inputs.probe.words ?? null };
    saveMask(maskPath, chosen.point.mask, {
      model: { id: session.folder.ref, contentHash: identity.contentHash },
      method: `correct:${method}`,
      allocation: 'global',
      structured: granularity === 'neurons',
      targetSparsity: null,
      weights: session.weights,
      reference: { name: o.general, hash: `sha256:${inputs.general.hash}`, samples: inputs.general.samples.length, tokens: U.tokens },
      metrics: { behaviour: chosen.point.behaviour, perplexity: chosen.point.perplexity, dense: { behaviour: dense.value, perplexity: densePerplexity }, metric, curve },
      extra: { granularity, count: chosen.point.count, undesired: o.undesired, heldOut: o.heldOut ?? null, pruned: componentList(ranked, chosen.point.count, granularity) },
    });
    const report = {
      schema: 'lrp-lens/correct@1',
      model: { ref: session.folder.ref, contentHash: identity.contentHash },
      method,
      aggregation: method === 'lrp' ? CORRECTION_AGGREGATION : null,
      granularity,
      layers: o.layers ?? null,
      available,
      undesired: { path: o.undesired, prompts: inputs.undesired.length, generated: inputs.undesired.filter((p) => p.continuation === undefined).length, seededPositions: U.positions },
      general: { path: o.general, sha256: inputs.general.hash, samples: inputs.general.samples.length },
      heldOut: { path: o.heldOut ?? o.undesired, prompts: inputs.heldOut.length, inSample: !o.heldOut },
      evaluation: { path: inputs.evaluation.source, windows: inputs.evaluation.samples.length },
      metric,
      dense: { behaviour: dense.value, perplexity: densePerplexity, continuations: dense.continuations ?? null },
      points: points.map((p, i) => ({ ...curve[i], continuations: p.continuations ?? null })),
      chosen: { count: chosen.point.count, withinBudget: chosen.withinBudget, maxPerplexityRise: o.maxPerplexityRise, mask: `${maskPath}.safetensors` },
      pruned: componentList(ranked, chosen.point.count, granularity),
    };
    if (o.json) writeJson(o.json, report);
    if (o.json !== '-') printCurve(method, spec, dense.value, densePerplexity, points, report.chosen);
  } finally {
    await session.close();
  }
}

/** The pruned components of the chosen point (the first 1,000 for weights), lowest score first. */
function componentList(ranked: Component[], count: number, granularity: Granularity) {
  return ranked.slice(0, Math.min(count, 1000)).map((c) => ({ weight: c.weight.name, kind: c.weight.kind, layer: c.weight.layer, [granularity === 'neurons' ? 'unit' : 'element']: c.index, score: c.score }));
}

function printCurve(method: string, spec: BehaviourMetricSpec, dense: number, densePpl: number, points: CorrectionPoint[], chosen: { count: number; withinBudget: boolean; mask: string }): void {
  const rows = [['dense', '0', dense.toFixed(4), densePpl.toFixed(3), '']];
  for (const p of points) rows.push([method, String(p.count), p.behaviour.toFixed(4), p.perplexity.toFixed(3), `${(100 * (p.perplexity / densePpl - 1)).toFixed(1)}%`]);
  console.log(markdownTable(['method', 'count', spec.kind, 'perplexity', 'Δ perplexity'], rows));
  console.log(`chose ${chosen.count}${chosen.withinBudget ? '' : ' (no count kept perplexity within the budget; the smallest was kept)'}: ${chosen.mask}`);
}

export function registerCorrection(program: Command): void {
  program
    .command('correct')
    .description('prune the components that drive an undesired behaviour (R̄_general − R̄_undesired), measure behaviour and perplexity')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .requiredOption('--undesired <file>', 'prompts that trigger the behaviour: *.prompts.jsonl (target = undesired continuation) or one prompt a line')
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
