// The tcefs command line.
import { Command, Option } from 'commander';
import { registerIoctl } from './ioctl.ts';
import { registerReplay } from './replay.ts';
import { registerRun } from './run.ts';
import { registerShell } from './shell.ts';
import { statusCommand, tceCommand } from './views.ts';
import { deviceCommand, eehCommand, faultCommand, irqCommand } from './control.ts';

export const DEFAULT_MOUNT = process.env.TCEFS_MOUNT ?? '/tmp/tcefs';

const program = new Command()
  .name('tcefs')
  .description('A FUSE-mounted /dev/iommu and /dev/vfio over an emulated PowerPC SPAPR TCE IOMMU')
  .showHelpAfterError();

program
  .command('mount')
  .description('mount the emulated tree and serve it in the foreground until SIGINT/SIGTERM')
  .argument('[dir]', 'mount point (created if missing)', DEFAULT_MOUNT)
  .option('-t, --topology <file>', 'JSON topology (default: the embedded PowerNV host)')
  .addOption(new Option('--allow-other', 'let other users open the nodes (needs user_allow_other for non-root)'))
  .option('--strict-kernel', 'reproduce kernel bugs tcefs guards against by default (see docs/spapr.md)')
  .option('--max-objects <n>', 'objects one iommufd context may hold (ENOSPC past it)', (v) => Number(v))
  .addOption(new Option('--vfio-container <kind>', 'what /dev/vfio/vfio is (overrides the topology)').choices(['legacy', 'iommufd']))
  .addOption(new Option('--page-size <size>', "the emulated host's page size (overrides the topology; see docs/page-size.md)").choices(['4K', '64K']))
  .option('--host-pci', "merge the host's real PCI functions into the emulated /sys/bus/pci/devices (emulated ones win)")
  .option('--selftest', "serve CONFIG_IOMMUFD_TEST's IOMMU_TEST_CMD and mock IOMMU for the kernel's iommufd selftests (4K pages unless --page-size)")
  // The daemon is loaded only by the command that runs it, so every other command starts quickly.
  .action(async (dir, opts) => (await import('./mount.ts')).mountCommand(dir, opts));

program
  .command('fault')
  .description('make the nth allocation or pin of the running daemon fail once (like fail_nth), or turn it off')
  .argument('<kind>', 'alloc | pin | any | off | status')
  .argument('[nth]', 'which check from now on fails (1 = the next one)')
  .option('-m, --mount <dir>', 'the mount to control', DEFAULT_MOUNT)
  .action(faultCommand);

program
  .command('device')
  .description('hot-unplug or hot-plug a PCI function of a running mount')
  .argument('<action>', 'remove | add')
  .argument('<bdf>', 'PCI address, e.g. 0000:01:00.0')
  .option('-m, --mount <dir>', 'the mount to control', DEFAULT_MOUNT)
  .action(deviceCommand);

program
  .command('eeh')
  .description("freeze an IOMMU group's PE as a detected error would (EEH)")
  .argument('<action>', 'freeze')
  .argument('<group>', 'IOMMU group number')
  .option('-m, --mount <dir>', 'the mount to control', DEFAULT_MOUNT)
  .action(eehCommand);

program
  .command('irq')
  .description('raise an interrupt of a PCI function, as its device would: it reaches the eventfd attached by SET_IRQS')
  .argument('<bdf>', 'PCI address, e.g. 0000:02:00.0')
  .argument('<index>', 'vfio-pci irq index: 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ')
  .argument('[vector]', 'MSI/MSI-X vector', '0')
  .option('-m, --mount <dir>', 'the mount to control', DEFAULT_MOUNT)
  .action(irqCommand);

program
  .command('status')
  .description('show PHBs, PEs, DMA windows, pinned and locked memory of a running mount')
  .option('-m, --mount <dir>', 'the mount to inspect', DEFAULT_MOUNT)
  .option('--json', 'machine-readable output')
  .action(statusCommand);

program
  .command('tce')
  .description("list the live TCEs of an IOMMU group's windows")
  .argument('<group>', 'IOMMU group number (as in /dev/vfio/<group>)')
  .option('-m, --mount <dir>', 'the mount to inspect', DEFAULT_MOUNT)
  .option('--json', 'machine-readable output (the PE and its windows)')
  .action(tceCommand);

registerRun(program);

registerIoctl(program, DEFAULT_MOUNT);
registerShell(program, DEFAULT_MOUNT);
registerReplay(program, DEFAULT_MOUNT);

await program.parseAsync(process.argv);
