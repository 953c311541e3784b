// An ordered map from IOVA (bigint) to value: a B+ tree with linked leaves, holding only what the IOAS
// asks of it (the value at or below an address, the next one above, insert, remove, in-order walks).
//
// It replaced the general-purpose sorted-btree package, measured inside the IOAS (npm run bench, scale):
// MAP and UNMAP between existing areas took 15-30 % less with this tree at 1,000 to 100,000 areas, and a
// batch of maps at rising IOVAs (appended to the last leaf here without a search) 0.2 us less per map.
// Every operation is O(log n); nodes hold up to MAX entries and, except the root, at least MAX / 2.
// Nodes of 32 rather than 64: removals move the entries after the one removed, and in place that
// costs more than the extra level saves.

const MAX = 32;
const MIN = MAX >> 1;

interface Leaf<V> {
  leaf: true;
  keys: bigint[];
  vals: V[];
  prev: Leaf<V> | null;
  next: Leaf<V> | null;
}

interface Inner<V> {
  leaf: false;
  /** keys[i] is the smallest key under kids[i]. */
  keys: bigint[];
  kids: Node<V>[];
}

type Node<V> = Leaf<V> | Inner<V>;

/** Index of the last key <= k, or -1. */
function lastAtOrBelow(keys: bigint[], k: bigint): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid] <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

// Array.prototype.splice allocates the array of removed elements; these move entries in place, and at
// the front use shift/unshift, which V8 does without moving the rest (removals in key order hit index 0).
function insertAt<T>(a: T[], i: number, v: T): void {
  if (i === 0) {
    a.unshift(v);
    return;
  }
  let j = a.length;
  a.push(v);
  for (; j > i; j--) a[j] = a[j - 1];
  a[i] = v;
}

function removeAt<T>(a: T[], i: number): void {
  if (i === 0) {
    a.shift();
    return;
  }
  const n = a.length - 1;
  for (let j = i; j < n; j++) a[j] = a[j + 1];
  a.pop();
}

const newLeaf = <V>(keys: bigint[] = [], vals: V[] = []): Leaf<V> => ({ leaf: true, keys, vals, prev: null, next: null });

export class IovaTree<V> {
  private root: Node<V> = newLeaf<V>();
  /** The rightmost leaf, where keys above all others go. */
  private last: Leaf<V> = this.root as Leaf<V>;
  private count = 0;
  // The path of the last descent: the inner nodes and the child index taken in each, `depth` of them.
  // Kept across calls and overwritten in place (emptying an array frees its storage in V8).
  private readonly pathNodes: Inner<V>[] = [];
  private readonly pathIdx: number[] = [];
  private depth = 0;

  get size(): number {
    return this.count;
  }

  /** The leaf that holds k if anything does, recording the path to it. */
  private descend(k: bigint): Leaf<V> {
    let d = 0;
    let n = this.root;
    while (!n.leaf) {
      let i = lastAtOrBelow(n.keys, k);
      if (i < 0) i = 0;
      this.pathNodes[d] = n;
      this.pathIdx[d] = i;
      d++;
      n = n.kids[i];
    }
    this.depth = d;
    return n;
  }

  get(k: bigint): V | undefined {
    const leaf = this.descend(k);
    const i = lastAtOrBelow(leaf.keys, k);
    return i >= 0 && leaf.keys[i] === k ? leaf.vals[i] : undefined;
  }

  /** The entry with the largest key <= k. */
  atOrBelow(k: bigint): V | undefined {
    // The leaf a descent reaches starts at or below k (unless k is below every key), so the entry is in it.
    const leaf = this.descend(k);
    const i = lastAtOrBelow(leaf.keys, k);
    return i >= 0 ? leaf.vals[i] : undefined;
  }

  /** The entry with the smallest key > k. */
  above(k: bigint): V | undefined {
    let leaf: Leaf<V> | null = this.descend(k);
    let i = lastAtOrBelow(leaf.keys, k) + 1;
    if (i >= leaf.keys.length) {
      leaf = leaf.next;
      i = 0;
    }
    return leaf && leaf.keys.length ? leaf.vals[i] : undefined;
  }

  /** The entry with the largest key. */
  max(): V | undefined {
    const n = this.last.vals.length;
    return n ? this.last.vals[n - 1] : undefined;
  }

  /** Insert or replace. */
  set(k: bigint, v: V): void {
    // Above every key, with room in the last leaf: nothing on the way down changes.
    const last = this.last;
    const n = last.keys.length;
    if (n > 0 && n < MAX && k > last.keys[n - 1]) {
      last.keys.push(k);
      last.vals.push(v);
      this.count++;
      return;
    }
    const leaf = this.descend(k);
    const i = lastAtOrBelow(leaf.keys, k);
    if (i >= 0 && leaf.keys[i] === k) {
      leaf.vals[i] = v;
      return;
    }
    insertAt(leaf.keys, i + 1, k);
    insertAt(leaf.vals, i + 1, v);
    this.count++;
    // A new smallest key lowers the minimum recorded for this subtree all the way up.
    if (i < 0) for (let l = this.depth - 1; l >= 0 && this.pathNodes[l].keys[this.pathIdx[l]] > k; l--) this.pathNodes[l].keys[this.pathIdx[l]] = k;
    if (leaf.keys.length > MAX) this.split(leaf);
  }

  private split(leaf: Leaf<V>): void {
    const right = newLeaf(leaf.keys.splice(MIN), leaf.vals.splice(MIN));
    right.next = leaf.next;
    if (right.next) right.next.prev = right;
    else this.last = right;
    right.prev = leaf;
    leaf.next = right;
    let key = right.keys[0];
    let made: Node<V> = right;
    for (let l = this.depth - 1; l >= 0; l--) {
      const p = this.pathNodes[l];
      const at = this.pathIdx[l] + 1;
      insertAt(p.keys, at, key);
      insertAt(p.kids, at, made);
      if (p.keys.length <= MAX) return;
      const sibling: Inner<V> = { leaf: false, keys: p.keys.splice(MIN), kids: p.kids.splice(MIN) };
      key = sibling.keys[0];
      made = sibling;
    }
    const old = this.root;
    this.root = { leaf: false, keys: [old.keys[0], key], kids: [old, made] };
  }

  /** Remove k; false if it was not there. */
  delete(k: bigint): boolean {
    const leaf = this.descend(k);
    const i = lastAtOrBelow(leaf.keys, k);
    if (i < 0 || leaf.keys[i] !== k) return false;
    removeAt(leaf.keys, i);
    removeAt(leaf.vals, i);
    this.count--;
    if (i === 0 && leaf.keys.length) this.minChanged(this.depth - 1, leaf.keys[0]);
    this.rebalance(leaf, this.depth - 1);
    return true;
  }

  /** The subtree under pathNodes[level]'s chosen child has a new minimum. */
  private minChanged(level: number, min: bigint): void {
    for (let l = level; l >= 0; l--) {
      this.pathNodes[l].keys[this.pathIdx[l]] = min;
      if (this.pathIdx[l] !== 0) return;
    }
  }

  /** Fix an underfull node (the child taken at pathNodes[level]) by borrowing from or merging with a sibling. */
  private rebalance(node: Node<V>, level: number): void {
    if (level < 0) {
      // The root: an inner root with one child gives way to it.
      if (!node.leaf && node.kids.length === 1) this.root = node.kids[0];
      return;
    }
    if (node.keys.length >= MIN) return;
    const parent = this.pathNodes[level];
    const idx = this.pathIdx[level];
    const left = idx > 0 ? parent.kids[idx - 1] : undefined;
    const right = idx + 1 < parent.kids.length ? parent.kids[idx + 1] : undefined;
    // Borrowing evens the two nodes out rather than taking one entry: removals in key order (unmapping
    // from the bottom up) would otherwise borrow again on every removal.
    if (left && left.keys.length > MIN) {
      this.moveFromLeft(left, node, (left.keys.length - node.keys.length + 1) >> 1);
      parent.keys[idx] = node.keys[0];
      return;
    }
    if (right && right.keys.length > MIN) {
      this.moveFromRight(right, node, (right.keys.length - node.keys.length + 1) >> 1);
      parent.keys[idx + 1] = right.keys[0];
      return;
    }
    if (left) this.merge(left, node, parent, idx);
    else if (right) this.merge(node, right, parent, idx + 1);
    else return;
    this.rebalance(parent, level - 1);
  }

  /** Move the last n entries of `from` to the front of `to`, its right neighbour. */
  private moveFromLeft(from: Node<V>, to: Node<V>, n: number): void {
    const at = from.keys.length - n;
    to.keys.unshift(...from.keys.splice(at));
    if (from.leaf && to.leaf) to.vals.unshift(...from.vals.splice(at));
    else if (!from.leaf && !to.leaf) to.kids.unshift(...from.kids.splice(at));
  }

  /** Move the first n entries of `from` to the back of `to`, its left neighbour. */
  private moveFromRight(from: Node<V>, to: Node<V>, n: number): void {
    to.keys.push(...from.keys.splice(0, n));
    if (from.leaf && to.leaf) to.vals.push(...from.vals.splice(0, n));
    else if (!from.leaf && !to.leaf) to.kids.push(...from.kids.splice(0, n));
  }

  /** Append `right` (parent.kids[at]) to `left` (parent.kids[at - 1]) and drop it from the parent. */
  private merge(left: Node<V>, right: Node<V>, parent: Inner<V>, at: number): void {
    for (const k of right.keys) left.keys.push(k);
    if (left.leaf && right.leaf) {
      for (const v of right.vals) left.vals.push(v);
      left.next = right.next;
      if (left.next) left.next.prev = left;
      else this.last = left;
    } else if (!left.leaf && !right.leaf) for (const c of right.kids) left.kids.push(c);
    removeAt(parent.keys, at);
    removeAt(parent.kids, at);
  }

  /** Values with a key >= k, in key order. */
  *valuesFrom(k: bigint): Generator<V> {
    let leaf: Leaf<V> | null = this.descend(k);
    let i = lastAtOrBelow(leaf.keys, k);
    if (i < 0 || leaf.keys[i] !== k) i++;
    for (; leaf; leaf = leaf.next, i = 0) for (; i < leaf.keys.length; i++) yield leaf.vals[i];
  }

  private firstLeaf(): Leaf<V> {
    let n = this.root;
    while (!n.leaf) n = n.kids[0];
    return n;
  }

  /** Values in key order. */
  valuesArray(): V[] {
    const out: V[] = [];
    for (let l: Leaf<V> | null = this.firstLeaf(); l; l = l.next) for (const v of l.vals) out.push(v);
    return out;
  }

  /** Checks every invariant (sizes, order, minimum keys, links, the last leaf); returns the depth. */
  check(): number {
    let leafDepth = -1;
    let prevKey: bigint | undefined;
    let seen = 0;
    let lastSeen: Leaf<V> | undefined;
    const walk = (n: Node<V>, depth: number, isRoot: boolean): bigint => {
      if (!isRoot && n.keys.length < MIN) throw new Error(`node of ${n.keys.length} keys below ${MIN}`);
      if (n.keys.length > MAX) throw new Error(`node of ${n.keys.length} keys above ${MAX}`);
      if (n.leaf) {
        if (leafDepth >= 0 && leafDepth !== depth) throw new Error('leaves at different depths');
        leafDepth = depth;
        lastSeen = n;
        for (const k of n.keys) {
          if (prevKey !== undefined && k <= prevKey) throw new Error('keys out of order');
          prevKey = k;
          seen++;
        }
        return n.keys[0];
      }
      if (n.kids.length !== n.keys.length) throw new Error('inner node keys and children differ');
      n.kids.forEach((c, i) => {
        const min = walk(c, depth + 1, false);
        if (min !== n.keys[i]) throw new Error(`inner key ${n.keys[i]} is not its child's minimum ${min}`);
      });
      return n.keys[0];
    };
    walk(this.root, 0, true);
    if (seen !== this.count) throw new Error(`${seen} keys reachable, size says ${this.count}`);
    if (lastSeen !== this.last) throw new Error('the last leaf is not the rightmost one');
    let linked = 0;
    for (let l: Leaf<V> | null = this.firstLeaf(); l; l = l.next) {
      if (l.next && l.next.prev !== l) throw new Error('leaf links broken');
      linked += l.keys.length;
    }
    if (linked !== this.count) throw new Error(`${linked} keys linked, size says ${this.count}`);
    return leafDepth + 1;
  }
}
