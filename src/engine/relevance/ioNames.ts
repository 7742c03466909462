/** Names of the compiled graph's extra inputs and outputs (stable; documented in the README). */

/** Where relevance that reaches no token is reported: biases, constants, softmax normalisation, stabilisers. */
export type AbsorbedKind = 'bias' | 'constant' | 'softmax' | 'stabiliser';

export const ABSORBED_KINDS: AbsorbedKind[] = ['bias', 'constant', 'softmax', 'stabiliser'];

export const IO = {
  targetIds: 'lrp_target_ids',
  targetWeights: 'lrp_target_weights',
  foilIds: 'lrp_foil_ids',
  foilWeights: 'lrp_foil_weights',
  seed: 'lrp_seed',
  tokens: 'lrp_tokens',
  layers: 'lrp_layers',
  heads: 'lrp_heads',
  neurons: 'lrp_neurons',
  absorbed: (k: AbsorbedKind) => `lrp_absorbed_${k}`,
  weight: (initializer: string) => `lrp_weight/${initializer}`,
} as const;
