/**
 * How relevance is propagated: `attnlrp` (AttnLRP, Achtibat et al. 2024), `cp-lrp` (AttnLRP with the
 * attention probabilities treated as constants) or `gradxinput` (the exact gradient × input).
 */
export type RelevanceMode = 'attnlrp' | 'gradxinput' | 'cp-lrp';
