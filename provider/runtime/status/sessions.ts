/**
 * Status page logins: a random session id in an HttpOnly cookie, the session itself kept in this process's memory
 * with its expiry. A restart logs everyone out, which is the safe direction; nothing secret is ever in the cookie.
 */
import * as crypto from "crypto";

/** Who a login is: the admin token's holder or a viewer; both may only read the status page. */
export type StatusRole = "admin" | "viewer";

/** One login. */
export interface StatusSession {
  role: StatusRole;
  expiresAt: number;
}

/** The name of the session cookie. */
export const SESSION_COOKIE = "discovery_status_session";

/** In-memory sessions with a fixed lifetime (no sliding renewal: a stolen cookie dies on time). */
export class StatusSessions {
  private readonly sessions = new Map<string, StatusSession>();

  /** Sessions live `ttlMs`; at most `max` at once, the oldest dropped first. */
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly max = 10_000,
  ) {}

  /** Starts a session for `role`; returns its id (256 random bits, base64url). */
  create(role: StatusRole): string {
    this.prune();
    if (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    const id = crypto.randomBytes(32).toString("base64url");
    this.sessions.set(id, { role, expiresAt: this.now() + this.ttlMs });
    return id;
  }

  /** The live session of `id`, or undefined (unknown, or expired and then forgotten). */
  get(id: string | undefined): StatusSession | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (s && s.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  /** Ends a session (logout). */
  delete(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  /** Seconds a new session lives, for the cookie's Max-Age. */
  get maxAgeSeconds(): number {
    return Math.floor(this.ttlMs / 1000);
  }

  private prune(): void {
    const t = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= t) this.sessions.delete(id);
  }
}
