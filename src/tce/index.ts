// The emulated SPAPR TCE IOMMU backend: geometry, tables, PEs, host memory, EEH and views.

export * from './geometry.ts';
export * from './tce-entry.ts';
export * from './sparse-u64.ts';
export * from './table.ts';
export * from './faults.ts';
export * from './memory.ts';
