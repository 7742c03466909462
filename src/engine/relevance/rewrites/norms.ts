/** Rewrites of com.microsoft normalisation and activation ops (SimplifiedLayerNormalization, SkipLayerNormalization, SkipSimplifiedLayerNormalization, Gelu, FastGelu, BiasGelu, QuickGelu). */
import type { RewriteTable } from './rewrite';

export const NORM_REWRITES: RewriteTable = {};
