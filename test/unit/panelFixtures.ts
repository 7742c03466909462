/** Hand-made AttributionResults for the view tests (the real one comes from stories260k). */
import type { AttributionResult } from '../../src/engine/attribution/result';

export interface FixtureShape {
  texts: string[];
  tokenValues?: number[];
  layers?: number;
  heads?: number;
  neurons?: number;
}

/** Deterministic signed pseudo-relevance, so figures have both hues. */
function wave(i: number, j: number): number {
  return Math.sin(i * 1.7 + j * 0.3) * (1 + (j % 3));
}

export function fixtureResult(shape: FixtureShape): AttributionResult {
  const { texts, layers = 2, heads = 4, neurons = 6 } = shape;
  let offset = 0;
  const tokens = texts.map((text, id) => {
    const start = offset;
    offset += text.length;
    return { id, text, start, end: offset };
  });
  const tokenValues = shape.tokenValues ?? texts.map((_, i) => wave(0, i));
  const matrix = (rows: number, cols: number) => Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => wave(r, c)));
  return {
    schema: 'lrp-lens/attribution@1',
    model: { ref: 'fixture', onnx: 'model.onnx', device: 'cpu' },
    rule: 'attnlrp',
    prompt: texts.join(''),
    tokens,
    target: { id: 7, text: ' Lily', position: texts.length - 1, logit: 3, prob: 0.6 },
    relevance: {
      tokens: tokenValues,
      layers: matrix(layers, texts.length),
      heads: matrix(layers, heads),
      neurons: matrix(layers, neurons),
      seed: 3,
      absorbed: {},
    },
    predictions: [
      { id: 7, text: ' Lily', prob: 0.6 },
      { id: 8, text: ' Sue', prob: 0.2 },
    ],
    timing: { loadMs: 0, compileMs: 0, runMs: 0, compiledFromCache: true },
    warnings: [],
  };
}

export const HOSTILE_TEXTS = ['<s>', '<script>alert(1)</script>', ' Tom & Jerry', ' "quoted"', " it's"];
