// Every write to the browser store goes through one tracker, so that a write
// that fails is never lost in silence: it is logged, kept by what it was
// writing, and shown in the connection indicator ("not saved on this
// device") until a later write of the same thing succeeds. A person on a
// phone must know when a reload would lose what the screen shows.
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
    try {
      await (typeof write === "function" ? write() : write);
      this.failures.delete(what);
      return true;
    } catch (err) {
      this.fail(what, err);
      return false;
    } finally {
      this.pending--;
      this.onChange();
      this.wake();
    }
  }

  /** Record a failure that happened outside `track` (the store could not open). */
  fail(what, err) {
    const message = err?.name ? `${err.name}: ${err.message}` : String(err);
    this.log.error(`could not save ${what} on this device:`, message);
    this.failures.set(what, { message, at: Date.now() });
    this.onChange();
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
