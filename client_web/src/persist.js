// Every write to the browser store goes through one tracker, so that a write
// that fails is never lost in silence: it is logged, kept by what it was
// writing, and shown in the connection indicator ("not saved on this
// device") until a later write of the same thing succeeds. A person on a
// phone must know when a reload would lose what the screen shows.
//
// The last failed write of each thing is kept and tried again as soon as the
// store works again (any other write succeeds, or a flush asks): things that
// change rarely (the incident list, the directory) would otherwise stay
// unsaved, and the warning up, until their next change.
//
// The tracker is also what "everything is on disk" means, observably:
// `state` is "saved" when no write is in flight and none has failed, and
// `idle()` resolves at that moment (tests and the page-hide flush wait on it).

export class Persistence {
  /**
   * @param {{onChange?: () => void, log?: {error: Function}}} options
   */
  constructor({ onChange = () => {}, log = console } = {}) {
    this.onChange = onChange;
    this.log = log;
    this.pending = 0;
    /** @type {Map<string, {message: string, at: number}>} what failed -> why */
    this.failures = new Map();
    this.waiters = [];
    this.retrying = false;
  }

  /** "saving" while writes are in flight, "failed" while one has failed, else "saved". */
  get state() {
    if (this.failures.size) return "failed";
    return this.pending ? "saving" : "saved";
  }

  /** Why the store is degraded, for a tooltip; null when it is not. */
  describe() {
    if (!this.failures.size) return null;
    const [what, { message }] = [...this.failures][this.failures.size - 1];
    return `Not saved on this device (${what}: ${message}).`;
  }

  /**
   * Track one write. Resolves to true when it succeeded and false when it
   * failed (the failure is recorded and logged); it never rejects, so a
   * caller that does not wait cannot produce an unhandled rejection.
   */
  async track(what, write) {
    this.pending++;
    this.onChange();
    let ok = false;
    try {
      await (typeof write === "function" ? write() : write);
      this.failures.delete(what);
      ok = true;
    } catch (err) {
      this.fail(what, err, typeof write === "function" ? write : null);
    } finally {
      this.pending--;
      this.onChange();
    }
    if (ok && !this.retrying) this.retryFailed();
    this.wake();
    return ok;
  }

  /**
   * Record a failure (`retry`: the write, to run again once the store works;
   * null for one that cannot be repeated, such as the store failing to open).
   */
  fail(what, err, retry = null) {
    const message = err?.name ? `${err.name}: ${err.message}` : String(err);
    this.log.error(`could not save ${what} on this device:`, message);
    this.failures.set(what, { message, at: Date.now(), retry });
    this.onChange();
  }

  /** Run the last failed write of each thing again; resolves when they are done. */
  async retryFailed() {
    const again = [...this.failures].filter(([, f]) => f.retry);
    if (!again.length) return;
    this.retrying = true;
    try {
      await Promise.all(again.map(([what, f]) => this.track(what, f.retry)));
    } finally {
      this.retrying = false;
    }
  }

  /** Resolves once no write is in flight. */
  idle() {
    if (!this.pending) return Promise.resolve(this.state);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake() {
    if (this.pending) return;
    const waiters = this.waiters.splice(0);
    for (const resolve of waiters) resolve(this.state);
  }
}
