/** The Select Model… list of a hub repo's variants: size, how the engine attributes it, cached or not (no vscode). */
import type { HubVariantList } from '../engine/hub/hubModel';
import { chooseVariant } from '../engine/hub/variants';
import { formatBytes } from '../engine/formatBytes';
import type { Dtype } from '../engine/hub/variants';

export interface VariantItem {
  label: string;
  description: string;
  detail: string;
  dtype: Dtype;
}

const SUPPORT = {
  exact: 'relevance exact',
  approximate: 'relevance approximate (activations rounded at run time)',
  unsupported: 'cannot be attributed (MatMulBnb4)',
};

export function variantItems(list: HubVariantList): VariantItem[] {
  const chosen = list.variants.length ? chooseVariant(list.variants, list.repo).dtype : undefined;
  return list.variants.map((v) => ({
    label: v.dtype === chosen ? `${v.dtype} (default)` : v.dtype,
    description: list.cached.includes(v.dtype) ? `${formatBytes(v.bytes)}, cached` : formatBytes(v.bytes),
    detail: `${[v.file, ...v.dataFiles].join(' + ')} · ${SUPPORT[v.support]}`,
    dtype: v.dtype,
  }));
}
