/** Rewrites of quantised weight ops (MatMulNBits, DequantizeLinear, MatMulInteger). */
import type { RewriteTable } from './rewrite';

export const QUANTIZED_REWRITES: RewriteTable = {};
