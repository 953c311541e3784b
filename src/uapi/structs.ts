// The argument structs of <linux/iommufd.h> and <linux/vfio.h> that tcefs decodes, in header order.
// test/unit/layouts.test.ts proves each one equals the layout measured by compiling the real headers.
import { flex, inUnion, nested, s32, struct, u16, u32, u64, u8, type StructLayout } from './layout.ts';

// ---- iommufd.h ------------------------------------------------------------------------------

export const iommu_destroy = struct('iommu_destroy', [u32('size'), u32('id')]);

export const iommu_ioas_alloc = struct('iommu_ioas_alloc', [u32('size'), u32('flags'), u32('out_ioas_id')]);

export const iommu_iova_range = struct('iommu_iova_range', [u64('start'), u64('last')]);

export const iommu_ioas_iova_ranges = struct('iommu_ioas_iova_ranges', [
  u32('size'), u32('ioas_id'), u32('num_iovas'), u32('__reserved'), u64('allowed_iovas'), u64('out_iova_alignment'),
]);

export const iommu_ioas_allow_iovas = struct('iommu_ioas_allow_iovas', [
  u32('size'), u32('ioas_id'), u32('num_iovas'), u32('__reserved'), u64('allowed_iovas'),
]);

export const iommu_ioas_map = struct('iommu_ioas_map', [
  u32('size'), u32('flags'), u32('ioas_id'), u32('__reserved'), u64('user_va'), u64('length'), u64('iova'),
]);

export const iommu_ioas_map_file = struct('iommu_ioas_map_file', [
  u32('size'), u32('flags'), u32('ioas_id'), s32('fd'), u64('start'), u64('length'), u64('iova'),
]);

export const iommu_ioas_copy = struct('iommu_ioas_copy', [
  u32('size'), u32('flags'), u32('dst_ioas_id'), u32('src_ioas_id'), u64('length'), u64('dst_iova'), u64('src_iova'),
]);

export const iommu_ioas_unmap = struct('iommu_ioas_unmap', [u32('size'), u32('ioas_id'), u64('iova'), u64('length')]);

export const iommu_option = struct('iommu_option', [
  u32('size'), u32('option_id'), u16('op'), u16('__reserved'), u32('object_id'), u64('val64'),
]);

export const iommu_vfio_ioas = struct('iommu_vfio_ioas', [u32('size'), u32('ioas_id'), u16('op'), u16('__reserved')]);

export const iommu_hwpt_alloc = struct('iommu_hwpt_alloc', [
  u32('size'), u32('flags'), u32('dev_id'), u32('pt_id'), u32('out_hwpt_id'), u32('__reserved'),
  u32('data_type'), u32('data_len'), u64('data_uptr'), u32('fault_id'), u32('__reserved2'),
]);

export const iommu_hw_info = struct('iommu_hw_info', [
  u32('size'), u32('flags'), u32('dev_id'), u32('data_len'), u64('data_uptr'),
  inUnion('type', u32('in_data_type')), inUnion('type', u32('out_data_type')),
  u8('out_max_pasid_log2'), u8('__reserved', 3), u64('out_capabilities'),
]);

export const iommu_hwpt_set_dirty_tracking = struct('iommu_hwpt_set_dirty_tracking', [
  u32('size'), u32('flags'), u32('hwpt_id'), u32('__reserved'),
]);

export const iommu_hwpt_get_dirty_bitmap = struct('iommu_hwpt_get_dirty_bitmap', [
  u32('size'), u32('hwpt_id'), u32('flags'), u32('__reserved'), u64('iova'), u64('length'), u64('page_size'), u64('data'),
]);

export const iommu_hwpt_invalidate = struct('iommu_hwpt_invalidate', [
  u32('size'), u32('hwpt_id'), u64('data_uptr'), u32('data_type'), u32('entry_len'), u32('entry_num'), u32('__reserved'),
]);

export const iommu_fault_alloc = struct('iommu_fault_alloc', [u32('size'), u32('flags'), u32('out_fault_id'), u32('out_fault_fd')]);

/** One page request of a fault group, as read() from a fault queue's fd returns it. */
export const iommu_hwpt_pgfault = struct('iommu_hwpt_pgfault', [
  u32('flags'), u32('dev_id'), u32('pasid'), u32('grpid'), u32('perm'), u32('__reserved'), u64('addr'), u32('length'),
  u32('cookie'),
]);

/** The answer to one fault group, as write() to a fault queue's fd takes it. */
export const iommu_hwpt_page_response = struct('iommu_hwpt_page_response', [u32('cookie'), u32('code')]);

export const iommu_viommu_alloc = struct('iommu_viommu_alloc', [
  u32('size'), u32('flags'), u32('type'), u32('dev_id'), u32('hwpt_id'), u32('out_viommu_id'), u32('data_len'),
  u32('__reserved'), u64('data_uptr'),
]);

export const iommu_vdevice_alloc = struct('iommu_vdevice_alloc', [
  u32('size'), u32('viommu_id'), u32('dev_id'), u32('out_vdevice_id'), u64('virt_id'),
]);

export const iommu_ioas_change_process = struct('iommu_ioas_change_process', [u32('size'), u32('__reserved')]);

export const iommu_veventq_alloc = struct('iommu_veventq_alloc', [
  u32('size'), u32('flags'), u32('viommu_id'), u32('type'), u32('veventq_depth'), u32('out_veventq_id'),
  u32('out_veventq_fd'), u32('__reserved'),
]);

/** The header of each record read() from a vEVENTQ's fd, the event data (if any) after it. */
export const iommufd_vevent_header = struct('iommufd_vevent_header', [u32('flags'), u32('sequence')]);

export const iommu_hw_queue_alloc = struct('iommu_hw_queue_alloc', [
  u32('size'), u32('flags'), u32('viommu_id'), u32('type'), u32('index'), u32('out_hw_queue_id'),
  u64('nesting_parent_iova'), u64('length'),
]);

/** Linux 7.3; not in the measured set of ../shared (test/fixtures/linux-7.3-uapi-additions.json). */
export const iommu_ioas_noiommu_get_pa = struct('iommu_ioas_noiommu_get_pa', [
  u32('size'), u32('flags'), u32('ioas_id'), u32('__reserved'), u64('iova'), u64('length'), u64('out_phys'),
]);

// ---- vfio.h ---------------------------------------------------------------------------------

export const vfio_info_cap_header = struct('vfio_info_cap_header', [u16('id'), u16('version'), u32('next')]);

export const vfio_group_status = struct('vfio_group_status', [u32('argsz'), u32('flags')]);

export const vfio_device_info = struct('vfio_device_info', [
  u32('argsz'), u32('flags'), u32('num_regions'), u32('num_irqs'), u32('cap_offset'), u32('pad'),
]);

export const vfio_region_info = struct('vfio_region_info', [
  u32('argsz'), u32('flags'), u32('index'), u32('cap_offset'), u64('size'), u64('offset'),
]);

export const vfio_irq_info = struct('vfio_irq_info', [u32('argsz'), u32('flags'), u32('index'), u32('count')]);

export const vfio_irq_set = struct('vfio_irq_set', [u32('argsz'), u32('flags'), u32('index'), u32('start'), u32('count'), flex('data', 'u8')]);

export const vfio_pci_dependent_device = struct('vfio_pci_dependent_device', [
  inUnion('id', u32('group_id')), inUnion('id', u32('devid')), u16('segment'), u8('bus'), u8('devfn'),
]);

export const vfio_pci_hot_reset_info = struct('vfio_pci_hot_reset_info', [
  u32('argsz'), u32('flags'), u32('count'), flex('devices', vfio_pci_dependent_device),
]);

export const vfio_pci_hot_reset = struct('vfio_pci_hot_reset', [u32('argsz'), u32('flags'), u32('count'), flex('group_fds', 's32')]);

export const vfio_device_gfx_plane_info = struct('vfio_device_gfx_plane_info', [
  u32('argsz'), u32('flags'), u32('drm_plane_type'), u32('drm_format'), u64('drm_format_mod'), u32('width'), u32('height'),
  u32('stride'), u32('size'), u32('x_pos'), u32('y_pos'), u32('x_hot'), u32('y_hot'),
  inUnion('id', u32('region_index')), inUnion('id', u32('dmabuf_id')), u32('reserved'),
]);

export const vfio_device_ioeventfd = struct('vfio_device_ioeventfd', [
  u32('argsz'), u32('flags'), u64('offset'), u64('data'), s32('fd'), u32('reserved'),
]);

export const vfio_device_feature = struct('vfio_device_feature', [u32('argsz'), u32('flags'), flex('data', 'u8')]);

// VFIO_DEVICE_FEATURE payloads (the bytes after the vfio_device_feature header), in header order.
export const vfio_device_feature_migration = struct('vfio_device_feature_migration', [u64('flags')]);

export const vfio_device_feature_mig_state = struct('vfio_device_feature_mig_state', [u32('device_state'), s32('data_fd')]);

export const vfio_precopy_info = struct('vfio_precopy_info', [u32('argsz'), u32('flags'), u64('initial_bytes'), u64('dirty_bytes')]);

export const vfio_device_low_power_entry_with_wakeup = struct('vfio_device_low_power_entry_with_wakeup', [
  s32('wakeup_eventfd'), u32('reserved'),
]);

export const vfio_device_feature_dma_logging_control = struct('vfio_device_feature_dma_logging_control', [
  u64('page_size'), u32('num_ranges'), u32('__reserved'), u64('ranges'),
]);

export const vfio_device_feature_dma_logging_range = struct('vfio_device_feature_dma_logging_range', [u64('iova'), u64('length')]);

export const vfio_device_feature_dma_logging_report = struct('vfio_device_feature_dma_logging_report', [
  u64('iova'), u64('length'), u64('page_size'), u64('bitmap'),
]);

export const vfio_device_feature_mig_data_size = struct('vfio_device_feature_mig_data_size', [u64('stop_copy_length')]);

export const vfio_device_feature_bus_master = struct('vfio_device_feature_bus_master', [u32('op')]);

export const vfio_region_dma_range = struct('vfio_region_dma_range', [u64('offset'), u64('length')]);

export const vfio_device_feature_dma_buf = struct('vfio_device_feature_dma_buf', [
  u32('region_index'), u32('open_flags'), u32('flags'), u32('nr_ranges'), flex('dma_ranges', vfio_region_dma_range),
]);

export const vfio_device_bind_iommufd = struct('vfio_device_bind_iommufd', [
  u32('argsz'), u32('flags'), s32('iommufd'), u32('out_devid'), u64('token_uuid_ptr'),
]);

export const vfio_device_attach_iommufd_pt = struct('vfio_device_attach_iommufd_pt', [
  u32('argsz'), u32('flags'), u32('pt_id'), u32('pasid'),
]);

export const vfio_device_detach_iommufd_pt = struct('vfio_device_detach_iommufd_pt', [
  u32('argsz'), u32('flags'), u32('pasid'),
]);

export const vfio_iommu_type1_info = struct('vfio_iommu_type1_info', [
  u32('argsz'), u32('flags'), u64('iova_pgsizes'), u32('cap_offset'), u32('pad'),
]);

export const vfio_iova_range = struct('vfio_iova_range', [u64('start'), u64('end')]);

export const vfio_iommu_type1_info_cap_iova_range = struct('vfio_iommu_type1_info_cap_iova_range', [
  nested('header', vfio_info_cap_header), u32('nr_iovas'), u32('reserved'), flex('iova_ranges', vfio_iova_range),
]);

export const vfio_iommu_type1_info_dma_avail = struct('vfio_iommu_type1_info_dma_avail', [
  nested('header', vfio_info_cap_header), u32('avail'),
]);

export const vfio_iommu_type1_dma_map = struct('vfio_iommu_type1_dma_map', [
  u32('argsz'), u32('flags'), u64('vaddr'), u64('iova'), u64('size'),
]);

export const vfio_iommu_type1_dma_unmap = struct('vfio_iommu_type1_dma_unmap', [
  u32('argsz'), u32('flags'), u64('iova'), u64('size'), flex('data', 'u8'),
]);

export const vfio_bitmap = struct('vfio_bitmap', [u64('pgsize'), u64('size'), u64('data')]);

export const vfio_iommu_type1_dirty_bitmap = struct('vfio_iommu_type1_dirty_bitmap', [u32('argsz'), u32('flags'), flex('data', 'u8')]);

export const vfio_iommu_type1_dirty_bitmap_get = struct('vfio_iommu_type1_dirty_bitmap_get', [
  u64('iova'), u64('size'), nested('bitmap', vfio_bitmap),
]);

export const vfio_iommu_spapr_tce_ddw_info = struct('vfio_iommu_spapr_tce_ddw_info', [
  u64('pgsizes'), u32('max_dynamic_windows_supported'), u32('levels'),
]);

export const vfio_iommu_spapr_tce_info = struct('vfio_iommu_spapr_tce_info', [
  u32('argsz'), u32('flags'), u32('dma32_window_start'), u32('dma32_window_size'),
  nested('ddw', vfio_iommu_spapr_tce_ddw_info),
]);

export const vfio_eeh_pe_err = struct('vfio_eeh_pe_err', [u32('type'), u32('func'), u64('addr'), u64('mask')]);

export const vfio_eeh_pe_op = struct('vfio_eeh_pe_op', [
  u32('argsz'), u32('flags'), u32('op'), inUnion('u', nested('err', vfio_eeh_pe_err)),
]);

export const vfio_iommu_spapr_register_memory = struct('vfio_iommu_spapr_register_memory', [
  u32('argsz'), u32('flags'), u64('vaddr'), u64('size'),
]);

export const vfio_iommu_spapr_tce_create = struct('vfio_iommu_spapr_tce_create', [
  u32('argsz'), u32('flags'), u32('page_shift'), u32('__resv1'), u64('window_size'), u32('levels'), u32('__resv2'),
  u64('start_addr'),
]);

export const vfio_iommu_spapr_tce_remove = struct('vfio_iommu_spapr_tce_remove', [
  u32('argsz'), u32('flags'), u64('start_addr'),
]);

/** Every declared struct, for the layout test and the C header generator. */
export const ALL_STRUCTS: StructLayout[] = [
  iommu_destroy, iommu_ioas_alloc, iommu_iova_range, iommu_ioas_iova_ranges, iommu_ioas_allow_iovas,
  iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_copy, iommu_ioas_unmap, iommu_option, iommu_vfio_ioas,
  iommu_hwpt_alloc, iommu_hw_info,
  vfio_info_cap_header, vfio_group_status, vfio_device_info, vfio_region_info, vfio_irq_info, vfio_irq_set,
  vfio_pci_dependent_device, vfio_pci_hot_reset_info, vfio_pci_hot_reset, vfio_device_feature,
  vfio_device_bind_iommufd, vfio_device_attach_iommufd_pt, vfio_device_detach_iommufd_pt,
  vfio_iommu_type1_info, vfio_iova_range, vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_dma_avail,
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_spapr_tce_ddw_info, vfio_iommu_spapr_tce_info, vfio_eeh_pe_err, vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory, vfio_iommu_spapr_tce_create, vfio_iommu_spapr_tce_remove,
  // The rest of the iommufd commands, the device calls tcefs refuses, and the feature payloads.
  iommu_hwpt_set_dirty_tracking, iommu_hwpt_get_dirty_bitmap, iommu_hwpt_invalidate, iommu_fault_alloc,
  iommu_viommu_alloc, iommu_vdevice_alloc, iommu_ioas_change_process, iommu_veventq_alloc, iommu_hw_queue_alloc,
  iommu_hwpt_pgfault, iommu_hwpt_page_response, iommufd_vevent_header,
  iommu_ioas_noiommu_get_pa,
  vfio_device_gfx_plane_info, vfio_device_ioeventfd, vfio_device_feature_migration, vfio_device_feature_mig_state,
  vfio_precopy_info, vfio_device_low_power_entry_with_wakeup, vfio_device_feature_dma_logging_control,
  vfio_device_feature_dma_logging_range, vfio_device_feature_dma_logging_report, vfio_device_feature_mig_data_size,
  vfio_device_feature_bus_master, vfio_region_dma_range, vfio_device_feature_dma_buf, vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
];

// ---- tcefs extensions (experimental; no upstream uAPI exists yet; see docs/iommufd-spapr.md) ----

/** One DMA window of a SPAPR TCE domain: slot 0 at the 32-bit window's start, slot 1 at the 64-bit start. */
export const iommu_hwpt_spapr_tce_window = struct('iommu_hwpt_spapr_tce_window', [
  u32('page_shift'), u32('levels'), u64('window_size'),
]);

/** IOMMU_HWPT_ALLOC data (data_type IOMMU_HWPT_DATA_SPAPR_TCE): the windows of a new paging domain. */
export const iommu_hwpt_spapr_tce = struct('iommu_hwpt_spapr_tce', [
  u32('flags'), u32('__reserved'), nested('window0', iommu_hwpt_spapr_tce_window), nested('window1', iommu_hwpt_spapr_tce_window),
]);

/** IOMMU_GET_HW_INFO data (out_data_type IOMMU_HW_INFO_TYPE_SPAPR_TCE): what a TCE IOMMU can do. */
export const iommu_hw_info_spapr_tce = struct('iommu_hw_info_spapr_tce', [
  u32('flags'), u32('max_dynamic_windows_supported'), u32('max_levels'), u32('tce32_start'), u32('tce32_size'),
  u32('__reserved'), u64('pgsizes'), u64('window64_start'),
]);

export const EXTENSION_STRUCTS: StructLayout[] = [iommu_hwpt_spapr_tce_window, iommu_hwpt_spapr_tce, iommu_hw_info_spapr_tce];
