// The device models a topology can name per function ("model": "...").
import { CopyEngine } from './copy-engine.ts';
import { MemoryModel } from './memory-model.ts';
import { NvmeController } from './nvme/controller.ts';
import type { ModelFactory } from './model.ts';

export const MODELS: Readonly<Record<string, ModelFactory>> = {
  /** The default: BARs are plain memory. */
  memory: () => new MemoryModel(),
  'copy-engine': (ctx) => new CopyEngine(ctx),
  /** An NVMe controller with one namespace (docs/devices.md). */
  nvme: (ctx) => new NvmeController(ctx, ctx.storage),
};

export const DEFAULT_MODEL = 'memory';

export * from './model.ts';
