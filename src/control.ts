// Commands for a running daemon, written as text lines to <mount>/.tcefs/control (the CLI's `tcefs fault`,
// `tcefs device` and `tcefs eeh` do that). They change the emulated machine, not any client's files.
import { EINVAL, ENODEV, Errno } from './errno.ts';
import type { Daemon } from './daemon.ts';

export const CONTROL_HELP = `# tcefs control: write one command per line
#   fail alloc|pin|any <n>   the nth allocation or pin from now on fails (ENOMEM / EFAULT), once
#   fail off                 disarm
#   device remove <BDF>      hot-unplug a function: its request notifier (REQ eventfd) fires, its open files
#                            answer ENODEV, it leaves /dev and sysfs
#   device add <BDF>         hot-plug it back
#   irq <BDF> <index> [<vector>]  the function raises an interrupt (index 0 INTx ... 4 REQ), as a device
#                            model would: it reaches the eventfd attached by SET_IRQS, INTx automasks
#   eeh freeze <group>       freeze the group's PE as a detected error would (DMA and MMIO fail until its
#                            user resets it; the host recovers a PE it drives itself at once)
#   eeh dma-fault <group>    the PE's next device DMA fails as through a bad TCE: the PHB freezes the PE
#                            and the fault is on record in its views
`;

/** Apply one command line; throws Errno(EINVAL) for bad syntax, ENODEV for unknown devices or groups. */
export function runControl(daemon: Daemon, line: string): void {
  const words = line.trim().split(/\s+/);
  const [verb, what, arg] = words;
  if (!verb || verb.startsWith('#')) return;
  const bad = () => new Errno(EINVAL, `bad control command "${line.trim()}"`);
  switch (verb) {
    case 'fail': {
      const faults = daemon.host.faults;
      if (what === 'off' && words.length === 2) return faults.disarm();
      const n = Number(arg);
      if ((what !== 'alloc' && what !== 'pin' && what !== 'any') || !Number.isInteger(n) || n < 1 || words.length !== 3) throw bad();
      return faults.arm(what, n);
    }
    case 'device': {
      if (words.length !== 3) throw bad();
      if (what === 'remove') daemon.inventory.remove(arg);
      else if (what === 'add') daemon.inventory.add(arg);
      else throw bad();
      daemon.rebuildTree();
      return;
    }
    case 'irq': {
      const f = daemon.inventory.functions.get(what ?? '');
      const index = Number(arg);
      const vector = Number(words[3] ?? 0);
      if (words.length < 3 || words.length > 4 || !Number.isInteger(index) || !Number.isInteger(vector) || index < 0 || vector < 0) throw bad();
      if (!f || f.removed) throw new Errno(ENODEV, `no device ${what}`);
      f.irqs.raise(index, vector);
      return;
    }
    case 'eeh': {
      const g = daemon.inventory.groups.get(Number(arg));
      if ((what !== 'freeze' && what !== 'dma-fault') || words.length !== 3) throw bad();
      if (!g || !/^\d+$/.test(arg)) throw new Errno(ENODEV, `no group ${arg}`);
      if (what === 'dma-fault') {
        g.pe.eeh.dmaFaultArmed = true;
        return;
      }
      g.pe.eeh.freeze();
      // A PE the host drives is recovered by the host's own EEH handling; only a user-owned one stays
      // frozen for its owner to notice and reset.
      if (g.pe.ownership === 'platform') g.pe.eeh.changeOwner();
      return;
    }
    default:
      throw bad();
  }
}

/** Run every line of a write; the first failing line stops the rest and decides the errno. */
export function runControlText(daemon: Daemon, text: string): void {
  for (const line of text.split('\n')) runControl(daemon, line);
}
