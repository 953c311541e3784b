// The mock IOMMU of the kernel's selftest driver, as iommufd_test.h and its driver define it: 2 KiB
// pages, an aperture of [16 MiB, 2 GiB) for the default table, a 56-bit one for the huge-page table
// (which maps 1 MiB pages and the host page), and PASIDs 20 bits wide.
import { SELFTEST } from '../uapi/selftest.ts';

export const MOCK_PAGE_SIZE = BigInt(SELFTEST.MOCK_PAGE_SIZE);
export const MOCK_HUGE_PAGE_SIZE = BigInt(SELFTEST.MOCK_HUGE_PAGE_SIZE);
export const MOCK_APERTURE_START = BigInt(SELFTEST.MOCK_APERTURE_START);
export const MOCK_APERTURE_LAST = BigInt(SELFTEST.MOCK_APERTURE_LAST);
/** Input address width of the mock's page table (the AMD v1 format it borrows, from level 2). */
export const MOCK_VA_BITS = 56n;
export const MOCK_PASID_WIDTH = SELFTEST.MOCK_PASID_WIDTH;
/** The device caches DEV_CHECK_CACHE reads start with this value. */
export const MOCK_DEV_CACHE_NUM = SELFTEST.MOCK_DEV_CACHE_NUM;

export type MockTableType = typeof SELFTEST.MOCK_IOMMUPT_DEFAULT | typeof SELFTEST.MOCK_IOMMUPT_HUGE;
