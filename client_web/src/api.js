// REST calls (SPEC section 18). Errors become ApiError with the typed error
// object, or code "network" when the server could not be reached.

export class ApiError extends Error {
  constructor(error, status) {
    super(error?.message || error?.code || "request failed");
    this.error = error;
    this.code = error?.code || "internal";
    this.status = status;
  }
}

export class Api {
  constructor(base = "", getToken = () => null) {
    this.base = base;
    this.getToken = getToken;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError({ code: "network", message: "no connection", retryable: true }, 0);
    }
    let data = null;
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const error =
        data && typeof data.error === "object"
          ? data.error
          : { code: resp.status >= 500 ? "internal" : "not_found", retryable: resp.status >= 500 };
      throw new ApiError(error, resp.status);
    }
    return data;
  }

  login(username, password) {
    return this.request("POST", "/api/v1/auth/login", { username, password });
  }

  /** A new token pair for a refresh token (SPEC 4); the old one is dead from now on. */
  refresh(refreshToken) {
    return this.request("POST", "/api/v1/auth/refresh", { refresh_token: refreshToken });
  }

  logout() {
    return this.request("POST", "/api/v1/auth/logout");
  }

  orgs() {
    return this.request("GET", "/api/v1/orgs");
  }

  users() {
    return this.request("GET", "/api/v1/users");
  }

  /**
   * Every incident of this organisation, most recently updated first,
   * following the list's `next` cursor (SPEC 18, "Incident list") up to
   * `max`. `complete` says whether the whole list was read: only then may a
   * caller conclude that an incident it holds but did not see is gone.
   */
  async incidents({ max = 2000 } = {}) {
    const incidents = [];
    let cursor = null;
    do {
      const query = cursor ? `?limit=1000&cursor=${encodeURIComponent(cursor)}` : "?limit=1000";
      const page = await this.request("GET", `/api/v1/incidents${query}`);
      incidents.push(...page.incidents);
      cursor = page.next ?? null;
    } while (cursor && incidents.length < max);
    return { incidents, complete: cursor === null };
  }

  incident(id) {
    return this.request("GET", `/api/v1/incidents/${encodeURIComponent(id)}`);
  }

  /** Every event after `afterSeq`, following the pages. */
  async timeline(id, afterSeq = 0, onPage = null) {
    const events = [];
    let cursor = afterSeq;
    let epoch = null;
    while (cursor !== null && cursor !== undefined) {
      const page = await this.request(
        "GET",
        `/api/v1/incidents/${encodeURIComponent(id)}/timeline?after_seq=${cursor}&limit=1000`,
      );
      epoch = page.epoch;
      events.push(...page.events);
      if (onPage) onPage(events.length, page.head_seq);
      cursor = page.next_after_seq;
    }
    return { epoch, events };
  }

  /** The incident view as of a seq: the server's state at that moment (SPEC 18). */
  viewAt(id, seq) {
    return this.request("GET", `/api/v1/incidents/${encodeURIComponent(id)}/view?at_seq=${seq}`);
  }

  /** KPIs over [from, to) (ms), as JSON, or as CSV text with `csv`. */
  async kpis(from, to, csv = false) {
    const query = `/api/v1/kpis?from=${from}&to=${to}`;
    if (!csv) return this.request("GET", query);
    const resp = await fetch(this.base + query + "&format=csv", {
      headers: { Authorization: `Bearer ${this.getToken()}` },
      cache: "no-store",
      credentials: "omit",
    });
    if (!resp.ok) throw new ApiError({ code: "internal", retryable: resp.status >= 500 }, resp.status);
    return resp.text();
  }
}
