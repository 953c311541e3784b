// What the numbers in uAPI fields mean by name, for front ends that speak in names (tcefs ioctl, the
// shell): which constants of constants.ts a field takes (flag bits or one of a set), and the element type
// behind a pointer field. Kept beside the struct and ioctl declarations so a new struct gets its names in
// the same place; test/unit/shell-names.test.ts checks every entry against structs.ts and constants.ts.
import { ALL_CONSTANTS } from './constants.ts';
import type { StructLayout } from './layout.ts';
import * as S from './structs.ts';

export interface ValueNames {
  /** flags: any OR of the names; enum: exactly one of them. */
  kind: 'flags' | 'enum';
  /** The constants share this prefix; people may leave it off (flags=READ|WRITE). */
  prefix: string;
  /** ...and this suffix (VFIO_PCI_<X>_REGION_INDEX). */
  suffix?: string;
  /** Constants under the prefix that belong to another field (VFIO_EEH_PE_STATE_* are results, not ops). */
  except?: string;
  /** Constants outside the prefix that the field also takes, always written in full. */
  also?: string[];
}

const flags = (prefix: string, more: Partial<ValueNames> = {}): ValueNames => ({ kind: 'flags', prefix, ...more });
const oneOf = (prefix: string, more: Partial<ValueNames> = {}): ValueNames => ({ kind: 'enum', prefix, ...more });

const key = (s: StructLayout, field: string) => `${s.name}.${field}`;

/** Named values of struct fields, by `struct.field`. */
export const FIELD_VALUES: ReadonlyMap<string, ValueNames> = new Map([
  // iommufd
  [key(S.iommu_ioas_map, 'flags'), flags('IOMMU_IOAS_MAP_')],
  [key(S.iommu_ioas_map_file, 'flags'), flags('IOMMU_IOAS_MAP_')],
  [key(S.iommu_ioas_copy, 'flags'), flags('IOMMU_IOAS_MAP_')],
  [key(S.iommu_option, 'option_id'), oneOf('IOMMU_OPTION_', { except: 'IOMMU_OPTION_OP_' })],
  [key(S.iommu_option, 'op'), oneOf('IOMMU_OPTION_OP_')],
  [key(S.iommu_vfio_ioas, 'op'), oneOf('IOMMU_VFIO_IOAS_')],
  [key(S.iommu_hwpt_alloc, 'flags'), flags('IOMMU_HWPT_ALLOC_', { also: ['IOMMU_HWPT_FAULT_ID_VALID'] })],
  [key(S.iommu_hwpt_alloc, 'data_type'), oneOf('IOMMU_HWPT_DATA_')],
  [key(S.iommu_hw_info, 'flags'), flags('IOMMU_HW_INFO_FLAG_')],
  [key(S.iommu_hw_info, 'in_data_type'), oneOf('IOMMU_HW_INFO_TYPE_')],
  [key(S.iommu_hw_info, 'out_data_type'), oneOf('IOMMU_HW_INFO_TYPE_')],
  // vfio
  [key(S.vfio_group_status, 'flags'), flags('VFIO_GROUP_FLAGS_')],
  [key(S.vfio_device_info, 'flags'), flags('VFIO_DEVICE_FLAGS_')],
  [key(S.vfio_region_info, 'flags'), flags('VFIO_REGION_INFO_FLAG_')],
  [key(S.vfio_region_info, 'index'), oneOf('VFIO_PCI_', { suffix: '_REGION_INDEX' })],
  [key(S.vfio_irq_info, 'flags'), flags('VFIO_IRQ_INFO_')],
  [key(S.vfio_irq_info, 'index'), oneOf('VFIO_PCI_', { suffix: '_IRQ_INDEX' })],
  [key(S.vfio_device_bind_iommufd, 'flags'), flags('VFIO_DEVICE_BIND_FLAG_')],
  [key(S.vfio_device_attach_iommufd_pt, 'flags'), flags('VFIO_DEVICE_ATTACH_')],
  [key(S.vfio_device_detach_iommufd_pt, 'flags'), flags('VFIO_DEVICE_DETACH_')],
  [key(S.vfio_iommu_type1_info, 'flags'), flags('VFIO_IOMMU_INFO_')],
  [key(S.vfio_iommu_type1_dma_map, 'flags'), flags('VFIO_DMA_MAP_FLAG_')],
  [key(S.vfio_iommu_type1_dma_unmap, 'flags'), flags('VFIO_DMA_UNMAP_FLAG_')],
  [key(S.vfio_iommu_spapr_tce_info, 'flags'), flags('VFIO_IOMMU_SPAPR_INFO_')],
  [key(S.vfio_eeh_pe_op, 'op'), oneOf('VFIO_EEH_PE_', { except: 'VFIO_EEH_PE_STATE_' })],
]);

// The IOMMU types and extensions share no prefix beyond VFIO_, which would also take every other VFIO
// constant; they are listed, and shown in full as the headers spell them.
const EXTENSIONS = ['VFIO_TYPE1_IOMMU', 'VFIO_SPAPR_TCE_IOMMU', 'VFIO_TYPE1v2_IOMMU', 'VFIO_DMA_CC_IOMMU', 'VFIO_EEH',
  'VFIO_SPAPR_TCE_v2_IOMMU', 'VFIO_NOIOMMU_IOMMU', 'VFIO_UNMAP_ALL', 'VFIO_UPDATE_VADDR'];

/** Named values of the integer argument of value ioctls, by ioctl name. */
export const ARG_VALUES: ReadonlyMap<string, ValueNames> = new Map([
  ['VFIO_CHECK_EXTENSION', oneOf('', { also: EXTENSIONS })],
  ['VFIO_SET_IOMMU', oneOf('', { also: EXTENSIONS.filter((n) => n.endsWith('_IOMMU')) })],
]);

/** The element type behind pointer fields whose data is an array of structs (others are bytes). */
export const POINTER_ELEMENTS: ReadonlyMap<string, StructLayout> = new Map([
  [key(S.iommu_ioas_allow_iovas, 'allowed_iovas'), S.iommu_iova_range],
  [key(S.iommu_ioas_iova_ranges, 'allowed_iovas'), S.iommu_iova_range],
]);

export interface NamedValue {
  /** As the header spells it. */
  name: string;
  /** What people may type instead: the name without the field's prefix and suffix. */
  short: string;
  value: number;
}

/** Every constant a field takes, in constants.ts order. An empty prefix takes only the `also` names. */
export function namedValues(v: ValueNames): NamedValue[] {
  const out: NamedValue[] = [];
  for (const [name, value] of Object.entries(ALL_CONSTANTS)) {
    const prefixed = v.prefix !== '' && name.startsWith(v.prefix) && (!v.suffix || name.endsWith(v.suffix));
    if (prefixed && !(v.except && name.startsWith(v.except))) {
      out.push({ name, short: name.slice(v.prefix.length, v.suffix ? -v.suffix.length : undefined), value });
    } else if (v.also?.includes(name)) out.push({ name, short: name, value });
  }
  return out;
}
