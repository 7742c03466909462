/** Rewrites of com.microsoft attention ops (RotaryEmbedding, GroupQueryAttention, MultiHeadAttention, Attention). */
import type { RewriteTable } from './rewrite';

export const ATTENTION_REWRITES: RewriteTable = {};
