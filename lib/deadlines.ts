// Deadlines of pending invokes: one Node.js timer for all of them, where a setTimeout per call and
// a clearTimeout per reply cost about a microsecond each on the invoke path (issue 4, S3 profile).
//
// Entries of the same duration expire in the order they were added (time only moves forward),
// so each duration keeps a FIFO list, linked through the entries themselves: adding and removing
// is O(1) and allocates nothing. The timer is armed for the earliest head of all lists and is
// re-armed only when it fires or when a new deadline comes before it; a reply that ends the
// earliest call leaves it armed, and the wake-up that finds nothing due just re-arms. The timer
// is unref'd: what keeps a process alive is the bus's port (EventBus.#updateRef), as before.
//
// A deadline is `performance.now() + ms` and an entry expires only once that time has passed.
// Node.js starts a timer from the event loop's cached time, which may lag the real time by as
// long as the current turn has run, so the timer may fire early: the entries that are not yet
// due wait for the next arming.

/** The longest delay setTimeout accepts (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the scheduler needs of an entry; the entry is its own list node. */
export interface DeadlineEntry {
  deadline: number;
  /** Order among entries of equal deadline (the order they were added). */
  seq: number;
  list: DeadlineList | undefined;
  prevDue: DeadlineEntry | undefined;
  nextDue: DeadlineEntry | undefined;
}

export interface DeadlineList {
  readonly ms: number;
  head: DeadlineEntry | undefined;
  tail: DeadlineEntry | undefined;
}

export class Deadlines<T extends DeadlineEntry> {
  readonly #lists = new Map<number, DeadlineList>();
  readonly #onExpire: (entry: T) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer is due (performance.now() time); Infinity when none is armed. */
  #armedFor = Infinity;
  #seq = 0;
  readonly #fire = (): void => this.#expire();

  /** `onExpire` is called for each entry that is due, in deadline order, after its removal. */
  constructor(onExpire: (entry: T) => void) {
    this.#onExpire = onExpire;
  }

  /** Schedules `entry` to expire `ms` (> 0) milliseconds from now. */
  add(entry: T, ms: number): void {
    let list = this.#lists.get(ms);
    if (list === undefined) {
      list = { ms, head: undefined, tail: undefined };
      this.#lists.set(ms, list);
    }
    entry.deadline = performance.now() + ms;
    entry.seq = this.#seq++;
    entry.list = list;
    entry.prevDue = list.tail;
    entry.nextDue = undefined;
    if (list.tail) list.tail.nextDue = entry;
    else list.head = entry;
    list.tail = entry;
    if (entry.deadline < this.#armedFor) this.#arm(entry.deadline);
  }

  /** Unschedules `entry`; does nothing if it is not scheduled. */
  remove(entry: T): void {
    const list = entry.list;
    if (list === undefined) return;
    if (entry.prevDue) entry.prevDue.nextDue = entry.nextDue;
    else list.head = entry.nextDue;
    if (entry.nextDue) entry.nextDue.prevDue = entry.prevDue;
    else list.tail = entry.prevDue;
    entry.list = entry.prevDue = entry.nextDue = undefined;
    if (list.head === undefined) this.#lists.delete(list.ms);
  }

  /** Stops the timer (close()); the entries stay as they are. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #arm(deadline: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = deadline;
    // At least 1 ms: Node.js would round 0 up to 1 anyway, and ceil keeps the wake-up at or after
    // the deadline by the event loop's clock. At most what setTimeout takes (beyond it Node.js
    // warns and waits 1 ms): a longer timeout takes several armings.
    const ms = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(deadline - performance.now())));
    this.#timer = setTimeout(this.#fire, ms);
    this.#timer.unref?.();
  }

  #expire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    let due: T[] | undefined;
    let lists = 0;
    for (const list of this.#lists.values()) {
      if (list.head === undefined || list.head.deadline > now) continue;
      lists++;
      while (list.head !== undefined && list.head.deadline <= now) {
        const entry = list.head as T;
        this.remove(entry);
        (due ??= []).push(entry);
      }
    }
    let next = Infinity;
    for (const list of this.#lists.values()) if (list.head!.deadline < next) next = list.head!.deadline;
    if (next !== Infinity) this.#arm(next);
    if (due === undefined) return;
    // Entries of several durations due in one wake-up end in deadline order.
    if (lists > 1) due.sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
    for (const entry of due) this.#onExpire(entry);
  }
}
