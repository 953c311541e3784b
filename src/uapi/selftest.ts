// The uAPI of CONFIG_IOMMUFD_TEST (drivers/iommu/iommufd/iommufd_test.h): the IOMMU_TEST_CMD argument
// with one union member per op, the mock driver's HWPT, hw-info, invalidation and vIOMMU payloads, and
// their constants. Not a production header: a kernel built without the option has none of it, which is
// why tcefs serves it only with --selftest. test/unit/layouts.test.ts checks every struct and constant
// here against test/fixtures/linux-7.3-iommufd-test.json, measured from the 7.3 header by
// scripts/selftest-headers.ts.
import { inUnion, nested, s32, struct, u32, u64, type FieldSpec, type StructLayout } from './layout.ts';

/** One member of the anonymous union: a struct named like the C member, laid out on its own. */
const member = (name: string, fields: FieldSpec[]): FieldSpec => inUnion('u', nested(name, struct(`iommu_test_cmd.${name}`, fields)));

export const iommu_test_cmd = struct('iommu_test_cmd', [
  u32('size'), u32('op'), u32('id'), u32('__reserved'),
  member('add_reserved', [u64('start'), u64('length')]),
  member('mock_domain', [u32('out_stdev_id'), u32('out_hwpt_id'), u32('out_idev_id')]),
  member('mock_domain_flags', [u32('out_stdev_id'), u32('out_hwpt_id'), u32('out_idev_id'), u32('dev_flags')]),
  member('mock_domain_replace', [u32('pt_id')]),
  member('check_map', [u64('iova'), u64('length'), u64('uptr')]),
  member('check_refs', [u64('length'), u64('uptr'), u32('refs')]),
  member('create_access', [u32('out_access_fd'), u32('flags')]),
  member('destroy_access_pages', [u32('access_pages_id')]),
  member('access_pages', [u32('flags'), u32('out_access_pages_id'), u64('iova'), u64('length'), u64('uptr')]),
  member('access_rw', [u64('iova'), u64('length'), u64('uptr'), u32('flags')]),
  member('memory_limit', [u32('limit')]),
  member('access_replace_ioas', [u32('ioas_id')]),
  member('dirty', [u32('flags'), u64('iova'), u64('length'), u64('page_size'), u64('uptr'), u64('out_nr_dirty')]),
  member('check_iotlb', [u32('id'), u32('iotlb')]),
  member('trigger_iopf', [u32('dev_id'), u32('pasid'), u32('grpid'), u32('perm'), u64('addr')]),
  member('check_dev_cache', [u32('id'), u32('cache')]),
  member('trigger_vevent', [u32('dev_id')]),
  member('pasid_attach', [u32('pasid'), u32('pt_id')]),
  member('pasid_replace', [u32('pasid'), u32('pt_id')]),
  member('pasid_detach', [u32('pasid')]),
  member('pasid_check', [u32('pasid'), u32('hwpt_id')]),
  member('dmabuf_get', [u32('length'), u32('open_flags')]),
  member('dmabuf_revoke', [s32('dmabuf_fd'), u32('revoked')]),
  u32('last'),
]);

/** IOMMU_GET_HW_INFO data of a mock device (IOMMU_HW_INFO_TYPE_SELFTEST). */
export const iommu_test_hw_info = struct('iommu_test_hw_info', [u32('flags'), u32('test_reg')]);

/** IOMMU_HWPT_ALLOC data IOMMU_HWPT_DATA_SELFTEST: a nested domain's IOTLB seed, a paging domain's table type. */
export const iommu_hwpt_selftest = struct('iommu_hwpt_selftest', [u32('iotlb'), u32('pagetable_type')]);

/** One IOMMU_HWPT_INVALIDATE entry (IOMMU_HWPT_INVALIDATE_DATA_SELFTEST). */
export const iommu_hwpt_invalidate_selftest = struct('iommu_hwpt_invalidate_selftest', [u32('flags'), u32('iotlb_id')]);

/** IOMMU_VIOMMU_ALLOC data (IOMMU_VIOMMU_TYPE_SELFTEST): a loopback value and the vIOMMU's mmap window. */
export const iommu_viommu_selftest = struct('iommu_viommu_selftest', [
  u32('in_data'), u32('out_data'), u64('out_mmap_offset'), u64('out_mmap_length'),
]);

/** One vIOMMU cache invalidation entry (IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST). */
export const iommu_viommu_invalidate_selftest = struct('iommu_viommu_invalidate_selftest', [
  u32('flags'), u32('vdev_id'), u32('cache_id'),
]);

/** A vEVENTQ record of IOMMU_VEVENTQ_TYPE_SELFTEST. */
export const iommu_viommu_event_selftest = struct('iommu_viommu_event_selftest', [u32('virt_id')]);

export const SELFTEST_STRUCTS: StructLayout[] = [
  iommu_test_cmd, iommu_test_hw_info, iommu_hwpt_selftest, iommu_hwpt_invalidate_selftest, iommu_viommu_selftest,
  iommu_viommu_invalidate_selftest, iommu_viommu_event_selftest,
];

/** IOMMU_TEST_OP_*: the `op` of IOMMU_TEST_CMD, numbered from 1 in header order. */
export const TEST_OP = {
  IOMMU_TEST_OP_ADD_RESERVED: 1,
  IOMMU_TEST_OP_MOCK_DOMAIN: 2,
  IOMMU_TEST_OP_MD_CHECK_MAP: 3,
  IOMMU_TEST_OP_MD_CHECK_REFS: 4,
  IOMMU_TEST_OP_CREATE_ACCESS: 5,
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: 6,
  IOMMU_TEST_OP_ACCESS_PAGES: 7,
  IOMMU_TEST_OP_ACCESS_RW: 8,
  IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: 9,
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: 10,
  IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: 11,
  IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: 12,
  IOMMU_TEST_OP_DIRTY: 13,
  IOMMU_TEST_OP_MD_CHECK_IOTLB: 14,
  IOMMU_TEST_OP_TRIGGER_IOPF: 15,
  IOMMU_TEST_OP_DEV_CHECK_CACHE: 16,
  IOMMU_TEST_OP_TRIGGER_VEVENT: 17,
  IOMMU_TEST_OP_PASID_ATTACH: 18,
  IOMMU_TEST_OP_PASID_REPLACE: 19,
  IOMMU_TEST_OP_PASID_DETACH: 20,
  IOMMU_TEST_OP_PASID_CHECK_HWPT: 21,
  IOMMU_TEST_OP_DMABUF_GET: 22,
  IOMMU_TEST_OP_DMABUF_REVOKE: 23,
} as const;

export type TestOpName = keyof typeof TEST_OP;

/** The other constants of iommufd_test.h, named as there. */
export const SELFTEST = {
  MOCK_IOMMUPT_DEFAULT: 0,
  MOCK_IOMMUPT_HUGE: 1,
  MOCK_APERTURE_START: 1 << 24,
  MOCK_APERTURE_LAST: 2 ** 31 - 1,
  MOCK_PAGE_SIZE: 2048,
  MOCK_HUGE_PAGE_SIZE: 512 * 2048,
  MOCK_FLAGS_ACCESS_WRITE: 1 << 0,
  MOCK_FLAGS_ACCESS_SYZ: 1 << 16,
  MOCK_ACCESS_RW_WRITE: 1 << 0,
  MOCK_ACCESS_RW_SLOW_PATH: 1 << 2,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: 1 << 0,
  MOCK_FLAGS_DEVICE_NO_DIRTY: 1 << 0,
  MOCK_FLAGS_DEVICE_PASID: 1 << 2,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX: 3,
  MOCK_NESTED_DOMAIN_IOTLB_NUM: 4,
  MOCK_DEV_CACHE_ID_MAX: 3,
  MOCK_DEV_CACHE_NUM: 4,
  IOMMU_TEST_PASID_RESERVED: 1024,
  MOCK_PASID_WIDTH: 20,
  IOMMU_HW_INFO_TYPE_SELFTEST: 0xfeedbeef,
  IOMMU_HW_INFO_SELFTEST_REGVAL: 0xdeadbeef,
  IOMMU_HWPT_DATA_SELFTEST: 0xdead,
  IOMMU_TEST_IOTLB_DEFAULT: 0xbadbeef,
  IOMMU_TEST_DEV_CACHE_DEFAULT: 0xbaddad,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST: 0xdeadbeef,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID: 0xdadbeef,
  IOMMU_TEST_INVALIDATE_FLAG_ALL: 1 << 0,
  IOMMU_VIOMMU_TYPE_SELFTEST: 0xdeadbeef,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST: 0xdeadbeef,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID: 0xdadbeef,
  IOMMU_VEVENTQ_TYPE_SELFTEST: 0xbeefbeef,
  IOMMU_HW_QUEUE_TYPE_SELFTEST: 0xdeadbeef,
  IOMMU_TEST_HW_QUEUE_MAX: 2,
} as const;

export const ALL_SELFTEST_CONSTANTS: Record<string, number> = { ...TEST_OP, ...SELFTEST };
