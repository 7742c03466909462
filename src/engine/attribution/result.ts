/** The attribution result: a stable JSON shape (schema below, documented in docs/formats.md). */
import type { RelevanceMode } from '../relevance/mode';

export interface TokenInfo {
  id: number;
  /** The token's text as it appears in the prompt (prompt.slice(start, end)); decoded text for special tokens. */
  text: string;
  /** UTF-16 offsets into the prompt; equal (empty range) for tokens with no text, such as BOS. */
  start: number;
  end: number;
}

export interface TargetInfo {
  id: number;
  text: string;
  /** Position whose logits are explained (the prediction of the token after it). */
  position: number;
  logit: number;
  prob: number;
  foil?: { id: number; text: string; logit: number; prob: number };
}

export interface Prediction {
  id: number;
  text: string;
  prob: number;
}

export interface AttributionResult {
  schema: 'lrp-lens/attribution@1';
  model: { ref: string; onnx: string; device: string };
  rule: RelevanceMode;
  prompt: string;
  tokens: TokenInfo[];
  target: TargetInfo;
  relevance: {
    /** Per input token, summed over the hidden dimension. */
    tokens: number[];
    /** [layer][token]: residual stream entering each block. Empty where not recognised. */
    layers: number[][];
    /** [layer][head]: each head's output relevance summed over tokens. */
    heads: number[][];
    /** [layer][neuron]: MLP neurons (input of the down projection) summed over tokens. */
    neurons: number[][];
    /** The explained score: logit(target) − logit(foil). */
    seed: number;
    /** Relevance absorbed on the way (biases, constants such as positions and masks, softmax, stabiliser). */
    absorbed: Record<string, number>;
  };
  predictions: Prediction[];
  /** Present when a continuation was attributed: one row per continuation token (target × source). */
  continuation?: { targets: TargetInfo[]; matrix: number[][] };
  timing: { loadMs: number; compileMs: number; runMs: number; compiledFromCache: boolean };
  warnings: string[];
}

const num = { type: 'number' } as const;
const numArray = { type: 'array', items: num } as const;
const matrix = { type: 'array', items: numArray } as const;
const targetSchema = {
  type: 'object',
  required: ['id', 'text', 'position', 'logit', 'prob'],
  properties: {
    id: { type: 'integer' },
    text: { type: 'string' },
    position: { type: 'integer', minimum: 0 },
    logit: num,
    prob: num,
    foil: { type: 'object', required: ['id', 'text', 'logit', 'prob'] },
  },
} as const;

/** JSON Schema (draft 2020-12 subset) of AttributionResult. */
export const ATTRIBUTION_SCHEMA = {
  $id: 'https://lrp-lens.dev/schema/attribution-1.json',
  type: 'object',
  required: ['schema', 'model', 'rule', 'prompt', 'tokens', 'target', 'relevance', 'predictions', 'timing', 'warnings'],
  properties: {
    schema: { const: 'lrp-lens/attribution@1' },
    model: { type: 'object', required: ['ref', 'onnx', 'device'] },
    rule: { enum: ['attnlrp', 'gradxinput', 'cp-lrp'] },
    prompt: { type: 'string' },
    tokens: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'text', 'start', 'end'],
        properties: { id: { type: 'integer' }, text: { type: 'string' }, start: { type: 'integer' }, end: { type: 'integer' } },
      },
    },
    target: targetSchema,
    relevance: {
      type: 'object',
      required: ['tokens', 'layers', 'heads', 'neurons', 'seed', 'absorbed'],
      properties: {
        tokens: numArray,
        layers: matrix,
        heads: matrix,
        neurons: matrix,
        seed: num,
        absorbed: { type: 'object', additionalProperties: num },
      },
    },
    predictions: {
      type: 'array',
      maxItems: 10,
      items: {
        type: 'object',
        required: ['id', 'text', 'prob'],
        properties: { id: { type: 'integer' }, text: { type: 'string' }, prob: num },
      },
    },
    continuation: {
      type: 'object',
      required: ['targets', 'matrix'],
      properties: { targets: { type: 'array', items: targetSchema }, matrix },
    },
    timing: { type: 'object', required: ['loadMs', 'compileMs', 'runMs', 'compiledFromCache'] },
    warnings: { type: 'array', items: { type: 'string' } },
  },
} as const;
