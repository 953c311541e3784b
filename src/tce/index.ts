// The emulated SPAPR TCE IOMMU backend: geometry, tables, PEs, host memory, EEH and views.

export * from './geometry.ts';
export * from './tce-entry.ts';
export * from './sparse-u64.ts';
export * from './table.ts';
export * from './faults.ts';
export * from './memory.ts';
export * from './vm-status.ts';
export * from './eeh.ts';
export * from './platform.ts';
export * from './pe.ts';
export * from './phb.ts';
export {
  powernvOps, POWERNV_WINDOW64_START, POWERNV_DEFAULT_LEVELS, PHB_PGSIZES,
  setupHostDefaultWindow as setupPowernvHostWindow,
} from './powernv.ts';
export {
  pseriesOps, PseriesFirmware, PSERIES_WINDOW64_START, PSERIES_LIMITED_WINDOW64_START, PSERIES_NO_DDW_WINDOWS,
  QUERY_PAGE_SIZES, queryPageSizeToMask, type PseriesFirmwareConfig,
  setupHostDefaultWindow as setupPseriesHostWindow,
} from './pseries.ts';
export * from './host.ts';
export * from './inspect.ts';
