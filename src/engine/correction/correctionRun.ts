/**
 * One correction run as the CLI (`lrp-lens correct`) and the extension's worker (`correct`) both do it: score
 * components by R̄_general − R̄_undesired (or a baseline's difference), prune the lowest `count` for each count,
 * measure the behaviour metric and perplexity, save the chosen point as a mask with the curve in its manifest,
 * and return the `lrp-lens/correct@1` report (documented in docs/formats.md).
 */
import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Device } from '../runtime/session';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';
import { headSizeFromConfig } from '../circuits/heads';
import { PruningSession } from '../pruning/prune';
import type { Stage } from '../pruning/prune';
import type { Mask } from '../weights/types';
import { parseWeightSelection } from '../pruning/prunable';
import { saveMask } from '../pruning/maskFile';
import { higherIsBetter, parseBehaviourMetric } from './behaviour';
import type { BehaviourMetricSpec } from './behaviour';
import {
  availableComponents,
  checkCorrectionMethod,
  checkCount,
  checkGranularity,
  checkTokenizerFit,
  CORRECTION_AGGREGATION,
  differentialScores,
  generalSamples,
  rankComponents,
  readPromptSet,
  undesiredSamples,
  unknownTokenIds,
} from './correct';
import type { Component, CorrectionMethod, Granularity, UndesiredPrompt } from './correct';
import { choosePoint, correctionSweep, measureBehaviour, wordsFor } from './sweep';
import type { BehaviourProbe } from './sweep';

/** The CLI's options, by the same names. */
export interface CorrectRunOptions {
  model: string;
  device?: Device;
  /** How weight relevance is collected: monolithic graph, block-wise, or auto (by the memory estimate). */
  execution?: ExecutionChoice;
  undesired: string;
  general: string;
  heldOut?: string;
  granularity?: string;
  layers?: string;
  count?: number;
  counts?: number[];
  method?: string;
  metric?: string;
  eval?: string;
  samples?: number;
  seqLen?: number;
  evalSeqLen?: number;
  steps?: number;
  maxPerplexityRise?: number;
  out: string;
}

export interface CorrectRunHooks {
  signal?: AbortSignal;
  onProgress?: (stage: Stage | 'score', done: number, total: number) => void;
  /** Which execution collects weight relevance and why (the run log). */
  onExecution?: (decision: ExecutionDecision) => void;
}

export interface PrunedComponent {
  weight: string;
  kind: string;
  layer: number | null;
  unit?: number;
  element?: number;
  score: number;
}

export interface CorrectionCurvePoint {
  count: number;
  behaviour: number;
  perplexity: number;
  perplexityRise: number;
  perLayer: Record<string, number>;
  continuations: string[] | null;
}

export interface CorrectReport {
  schema: 'lrp-lens/correct@1';
  model: { ref: string; contentHash: string };
  method: CorrectionMethod;
  aggregation: string | null;
  granularity: Granularity;
  layers: string | null;
  available: number;
  undesired: { path: string; prompts: number; generated: number; seededPositions: number };
  general: { path: string; sha256: string; samples: number };
  heldOut: { path: string; prompts: number; inSample: boolean };
  evaluation: { path: string; windows: number };
  metric: { spec: string; kind: string; higherIsBetter: boolean; words: string[] | null };
  dense: { behaviour: number; perplexity: number; continuations: string[] | null };
  points: CorrectionCurvePoint[];
  chosen: { count: number; withinBudget: boolean; maxPerplexityRise: number; mask: string };
  pruned: PrunedComponent[];
  /** The held-out prompts the continuations continue (same order). */
  prompts: string[];
  /** Greedy continuations before and after the chosen mask, for the panel: held-out undesired and general prompts. */
  examples: { undesired: ExampleSet; general: ExampleSet };
}

export interface ExampleSet {
  prompts: string[];
  before: string[];
  after: string[];
}

/** Tokens per example continuation, and how many general prompts (openings of the general samples). */
const EXAMPLE_TOKENS = 24;
const GENERAL_EXAMPLES = 3;
const GENERAL_PROMPT_TOKENS = 12;

interface Inputs {
  undesired: UndesiredPrompt[];
  heldOut: UndesiredPrompt[];
  general: ReturnType<PruningSession['samples']>;
  evaluation: ReturnType<PruningSession['samples']>;
  probe: BehaviourProbe;
}

function readInputs(session: PruningSession, o: CorrectRunOptions, spec: BehaviourMetricSpec): Inputs {
  const undesired = readPromptSet(o.undesired, 'undesired');
  const heldOut = o.heldOut ? readPromptSet(o.heldOut, 'held-out') : undesired;
  const general = session.samples(o.general, { samples: o.samples, seqLen: o.seqLen ?? 128 }, 'general');
  const evaluation = o.eval ? session.samples(o.eval, { seqLen: o.evalSeqLen ?? 128 }, 'evaluation') : general;
  const unknown = unknownTokenIds(session.folder.dir);
  const tok = session.tokenizer;
  checkTokenizerFit(
    undesired.map((p) => tok.encode(p.prompt + (p.continuation ?? ''))),
    unknown,
    'undesired',
    o.undesired,
  );
  checkTokenizerFit(
    heldOut.map((p) => tok.encode(p.prompt)),
    unknown,
    'held-out',
    o.heldOut ?? o.undesired,
  );
  checkTokenizerFit(general.samples, unknown, 'general', o.general);
  return { undesired, heldOut, general, evaluation, probe: { spec, prompts: heldOut, words: wordsFor(spec, undesired) } };
}

export async function runCorrection(o: CorrectRunOptions, hooks: CorrectRunHooks = {}): Promise<CorrectReport> {
  const method = checkCorrectionMethod(o.method ?? 'lrp');
  const granularity = checkGranularity(o.granularity ?? 'neurons');
  const spec = parseBehaviourMetric(o.metric ?? 'repetition');
  const counts = o.counts ?? [o.count ?? 100];
  hooks.onProgress?.('load', 0, 1);
  const session = await PruningSession.open({
    model: o.model,
    device: o.device,
    execution: o.execution,
    onExecution: hooks.onExecution,
    seqLen: o.seqLen,
    selection: parseWeightSelection(o.layers),
    signal: hooks.signal,
    onProgress: hooks.onProgress,
  });
  try {
    const headSize = granularity === 'heads' ? headSizeFromConfig(session.folder.config) : 0;
    const available = availableComponents(session.weights, granularity, headSize);
    counts.forEach((c) => checkCount(c, available, granularity));
    return await correctWith(session, o, { method, granularity, spec, counts, available, headSize });
  } finally {
    await session.close();
  }
}

interface Resolved {
  method: CorrectionMethod;
  granularity: Granularity;
  spec: BehaviourMetricSpec;
  counts: number[];
  available: number;
  headSize: number;
}

async function correctWith(session: PruningSession, o: CorrectRunOptions, r: Resolved): Promise<CorrectReport> {
  const { method, granularity, spec, counts, available, headSize } = r;
  const maxRise = o.maxPerplexityRise ?? 0.1;
  const inputs = readInputs(session, o, spec);
  const U = await undesiredSamples(session, inputs.undesired, o.steps ?? 50, { spec, words: inputs.probe.words });
  const ranked = rankComponents(
    await differentialScores(session, method, generalSamples(inputs.general.samples), U),
    session.weights,
    granularity,
    headSize,
  );
  const dense = await measureBehaviour(session, inputs.probe, undefined);
  const densePerplexity = (await session.perplexity(inputs.evaluation.samples)).perplexity;
  const points = await correctionSweep(session, ranked, granularity, counts, inputs.probe, inputs.evaluation.samples, headSize);
  const chosen = choosePoint(points, densePerplexity, spec, maxRise);
  const curve = points.map((p) => ({
    count: p.count,
    behaviour: p.behaviour,
    perplexity: p.perplexity,
    perplexityRise: p.perplexity / densePerplexity - 1,
    perLayer: p.perLayer,
  }));
  const contentHash = session.contentHash();
  const maskPath = resolve(o.out).replace(/\.(safetensors|json)$/, '');
  mkdirSync(dirname(maskPath), { recursive: true });
  const metric = {
    spec: o.metric ?? 'repetition',
    kind: spec.kind,
    higherIsBetter: higherIsBetter(spec),
    words: inputs.probe.words ?? null,
  };
  const pruned = componentList(ranked, chosen.point.count, granularity);
  const examples = await examplesFor(session, inputs, chosen.point.mask);
  saveMask(maskPath, chosen.point.mask, {
    model: { id: session.folder.ref, contentHash },
    method: `correct:${method}`,
    allocation: 'global',
    structured: granularity !== 'weights',
    targetSparsity: null,
    weights: session.weights,
    reference: { name: o.general, hash: `sha256:${inputs.general.hash}`, samples: inputs.general.samples.length, tokens: U.tokens },
    metrics: {
      behaviour: chosen.point.behaviour,
      perplexity: chosen.point.perplexity,
      dense: { behaviour: dense.value, perplexity: densePerplexity },
      metric,
      curve,
    },
    extra: { granularity, count: chosen.point.count, undesired: o.undesired, heldOut: o.heldOut ?? null, pruned },
  });
  return {
    schema: 'lrp-lens/correct@1',
    model: { ref: session.folder.ref, contentHash },
    method,
    aggregation: method === 'lrp' ? CORRECTION_AGGREGATION : null,
    granularity,
    layers: o.layers ?? null,
    available,
    undesired: {
      path: o.undesired,
      prompts: inputs.undesired.length,
      generated: inputs.undesired.filter((p) => p.continuation === undefined).length,
      seededPositions: U.positions,
    },
    general: { path: o.general, sha256: inputs.general.hash, samples: inputs.general.samples.length },
    heldOut: { path: o.heldOut ?? o.undesired, prompts: inputs.heldOut.length, inSample: !o.heldOut },
    evaluation: { path: inputs.evaluation.source, windows: inputs.evaluation.samples.length },
    metric,
    dense: { behaviour: dense.value, perplexity: densePerplexity, continuations: dense.continuations ?? null },
    points: points.map((p, i) => ({ ...curve[i], continuations: p.continuations ?? null })),
    chosen: { count: chosen.point.count, withinBudget: chosen.withinBudget, maxPerplexityRise: maxRise, mask: `${maskPath}.safetensors` },
    pruned,
    prompts: inputs.heldOut.map((p) => p.prompt),
    examples,
  };
}

async function exampleSet(session: PruningSession, prompts: string[], mask: Mask): Promise<ExampleSet> {
  const before = await session.generations(prompts, EXAMPLE_TOKENS);
  return { prompts, before, after: await session.generations(prompts, EXAMPLE_TOKENS, mask) };
}

/** Held-out undesired prompts, and openings of the first general samples, continued before and after. */
async function examplesFor(session: PruningSession, inputs: Inputs, mask: Mask): Promise<CorrectReport['examples']> {
  const tok = session.tokenizer;
  const openings = inputs.general.samples
    .slice(0, GENERAL_EXAMPLES)
    .map((s) => tok.decode(s.slice(0, GENERAL_PROMPT_TOKENS), { skip_special_tokens: true }).trim());
  return {
    undesired: await exampleSet(
      session,
      inputs.heldOut.map((p) => p.prompt),
      mask,
    ),
    general: await exampleSet(session, openings.filter(Boolean), mask),
  };
}

/** The pruned components of the chosen point (the first 1,000 for weights), lowest score first. */
function componentList(ranked: Component[], count: number, granularity: Granularity): PrunedComponent[] {
  return ranked.slice(0, Math.min(count, 1000)).map((c) => ({
    weight: c.weight.name,
    kind: c.weight.kind,
    layer: c.weight.layer,
    [granularity === 'neurons' ? 'unit' : granularity === 'heads' ? 'head' : 'element']: c.index,
    score: c.score,
  }));
}
