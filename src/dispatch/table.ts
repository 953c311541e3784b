// Command tables: for one file kind, which ioctl numbers exist and who handles them. In the style of
// iommufd's op table, each entry pairs a declaration (struct, minimum size) with its handler; a number
// missing from the table of the file it was written to is ENOTTY, as in the kernel.
import { ENOTTY } from '../errno.ts';
import { ioctl, type FileKind, type IoctlDecl } from '../uapi/ioctls.ts';
import type { IoctlCall } from './call.ts';

/** A handler returns the ioctl's return value (0 if it returns nothing) or throws Errno. */
export type Handler<F> = (file: F, call: IoctlCall) => number | bigint | void;

export interface Command<F> {
  decl: IoctlDecl;
  handler: Handler<F>;
}

export class CommandTable<F> {
  private readonly byNr = new Map<number, Command<F>>();

  /**
   * @param fallback errno for numbers not in the table: ENOTTY in general, but e.g. a legacy container
   *   without an IOMMU backend answers EINVAL to everything it does not know.
   */
  constructor(readonly kind: FileKind, entries: Record<string, Handler<F>>, readonly fallback = ENOTTY) {
    for (const [name, handler] of Object.entries(entries)) {
      const decl = ioctl(name);
      if (!decl.kinds.includes(kind)) throw new Error(`${name} does not exist on a ${kind} file`);
      if (this.byNr.has(decl.nr)) throw new Error(`${name} collides with ${this.byNr.get(decl.nr)!.decl.name} on a ${kind} file`);
      this.byNr.set(decl.nr, { decl, handler });
    }
  }

  get(nr: number): Command<F> | undefined {
    return this.byNr.get(nr);
  }

  /** A table that answers this one's numbers first, then the other's (a container's core + its backend). */
  with(other: CommandTable<F>): CommandTable<F> {
    const merged = new CommandTable<F>(this.kind, {}, other.fallback);
    for (const [nr, c] of other.byNr) merged.byNr.set(nr, c);
    for (const [nr, c] of this.byNr) merged.byNr.set(nr, c);
    return merged;
  }

  names(): string[] {
    return [...this.byNr.values()].map((c) => c.decl.name);
  }
}
