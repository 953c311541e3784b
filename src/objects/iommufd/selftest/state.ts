// What CONFIG_IOMMUFD_TEST keeps across contexts: the temporary memory limit the tests set and restore,
// and the numbering of mock devices. One per daemon started with --selftest.
import { SharedBackings } from './user-memory.ts';

/** The kernel's default iommufd_test_memory_limit (bytes of batch memory before a split is forced). */
export const DEFAULT_TEST_MEMORY_LIMIT = 65536;

export class SelftestState {
  memoryLimit = DEFAULT_TEST_MEMORY_LIMIT;
  private nextDevice = 0;
  private readonly freeDevices: number[] = [];
  /** Shared memory behind pins, for ACCESS_RW after the pinning process is gone. */
  readonly shared = new SharedBackings();

  /** A mock device number (iommufd_mock<N>): the lowest free one, as an IDA gives. */
  allocDevice(): number {
    if (this.freeDevices.length) {
      this.freeDevices.sort((a, b) => a - b);
      return this.freeDevices.shift()!;
    }
    return this.nextDevice++;
  }

  freeDevice(n: number): void {
    this.freeDevices.push(n);
  }
}
