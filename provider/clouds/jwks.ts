/**
 * An identity provider's signing keys: Google's (`join.gcp.jwks_url`) and Entra ID's (`join.azure.jwks_url`),
 * fetched over https and cached for as long as the provider's own `Cache-Control: max-age` / `Expires` says, within
 * bounds. Only RSA signing keys of 2048 bits or more are kept: the keys of a service account, or any key from
 * anywhere else, can never verify a gcp or azure join (Vault CVE-2020-16251).
 */
import { createPublicKey, KeyObject } from "crypto";

/** How a JWKS response is fetched; `fetch` in production, a fake in unit tests. */
export type JwksFetch = (url: string, init: { signal: AbortSignal; redirect: "error" }) => Promise<Response>;

/** Limits and seams of a {@link JwksCache}. */
export interface JwksCacheOptions {
  fetch?: JwksFetch;
  now?: () => number;
  /** Cache lifetime bounds; Google sends about 6 hours. A response without caching headers is kept for the minimum. */
  minTtlMs?: number;
  maxTtlMs?: number;
  /** An unknown `kid` refetches the set at most this often, so forged kids cannot make the runtime hammer Google. */
  refetchIntervalMs?: number;
  timeoutMs?: number;
}

/** The key set could not be fetched or read; the join is refused, never accepted on old keys past their expiry. */
export class JwksUnavailable extends Error {
  /** `why` names the URL and what went wrong. */
  constructor(why: string) {
    super(why);
    this.name = "JwksUnavailable";
  }
}

const MAX_BODY_BYTES = 64 * 1024;
const MAX_KEYS = 32;

/** The cache lifetime a response asks for: `max-age` (unless `no-store`/`no-cache`), else `Expires` minus `Date`. */
export function cacheLifetimeMs(headers: Headers, nowMs: number): number | undefined {
  const cc = headers.get("cache-control") ?? "";
  if (/(^|,)\s*(no-store|no-cache)\b/i.test(cc)) return 0;
  const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?/i.exec(cc);
  if (maxAge) return Number(maxAge[1]) * 1000;
  const expires = Date.parse(headers.get("expires") ?? "");
  if (Number.isNaN(expires)) return undefined;
  const date = Date.parse(headers.get("date") ?? "");
  return Math.max(0, expires - (Number.isNaN(date) ? nowMs : date));
}

/** The usable keys of a JWKS document by kid: RSA, for signatures, RS256 or unspecified, at least 2048 bits. */
export function rsaSigningKeys(doc: unknown): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  const list = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(list)) throw new Error('the document has no "keys" list');
  for (const jwk of list.slice(0, MAX_KEYS)) {
    const k = jwk as Record<string, unknown>;
    if (k?.kty !== "RSA" || typeof k.kid !== "string" || typeof k.n !== "string" || typeof k.e !== "string") continue;
    if ((k.use !== undefined && k.use !== "sig") || (k.alg !== undefined && k.alg !== "RS256")) continue;
    try {
      const key = createPublicKey({ key: { kty: "RSA", n: k.n, e: k.e }, format: "jwk" });
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) keys.set(k.kid, key);
    } catch {
      // a key that does not decode verifies nothing
    }
  }
  return keys;
}

/** Google's signing keys from one URL, cached per the response's caching headers. */
export class JwksCache {
  private keys = new Map<string, KeyObject>();
  private expiresAt = 0;
  private lastFetch = -Infinity;
  private inFlight?: Promise<void>;
  private lastError?: JwksUnavailable;
  private readonly o: Required<JwksCacheOptions>;

  /** A cache of the key set at `url`; nothing is fetched until a key is asked for. */
  constructor(
    readonly url: string,
    opts: JwksCacheOptions = {},
  ) {
    this.o = {
      fetch: opts.fetch ?? ((u, init) => fetch(u, init)),
      now: opts.now ?? Date.now,
      minTtlMs: opts.minTtlMs ?? 60_000,
      maxTtlMs: opts.maxTtlMs ?? 24 * 3600_000,
      refetchIntervalMs: opts.refetchIntervalMs ?? 30_000,
      timeoutMs: opts.timeoutMs ?? 5_000,
    };
  }

  /**
   * The key named `kid`, or undefined when the current set lacks it even after one refetch. Throws
   * {@link JwksUnavailable} when the set is expired and cannot be fetched.
   */
  async key(kid: string): Promise<KeyObject | undefined> {
    const now = this.o.now();
    if (now >= this.expiresAt) await this.refresh();
    else if (!this.keys.has(kid) && now - this.lastFetch >= this.o.refetchIntervalMs)
      // Google may have rotated in a new key before our copy expired.
      await this.refresh().catch(() => undefined);
    return this.keys.get(kid);
  }

  private async refresh(): Promise<void> {
    // A failed fetch is not retried for every join while Google (or the network) is down.
    if (this.lastError && this.o.now() - this.lastFetch < this.o.refetchIntervalMs) throw this.lastError;
    // Concurrent joins share one fetch.
    this.inFlight ??= this.load()
      .then(() => (this.lastError = undefined))
      .catch((err) => {
        throw (this.lastError = err as JwksUnavailable);
      })
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async load(): Promise<void> {
    this.lastFetch = this.o.now();
    const fail = (why: string) => new JwksUnavailable(`the signing keys at ${this.url} ${why}`);
    let res: Response;
    try {
      res = await this.o.fetch(this.url, { signal: AbortSignal.timeout(this.o.timeoutMs), redirect: "error" });
    } catch (err) {
      throw fail(`cannot be fetched: ${String((err as Error)?.message ?? err).slice(0, 120)}`);
    }
    if (res.status !== 200) throw fail(`answered HTTP ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > MAX_BODY_BYTES) throw fail(`are larger than ${MAX_BODY_BYTES} bytes`);
    let keys: Map<string, KeyObject>;
    try {
      keys = rsaSigningKeys(JSON.parse(body.toString("utf8")));
    } catch (err) {
      throw fail(`are not a JSON Web Key Set: ${(err as Error).message}`.slice(0, 160));
    }
    const now = this.o.now();
    const ttl = cacheLifetimeMs(res.headers, now) ?? this.o.minTtlMs;
    this.keys = keys;
    this.expiresAt = now + Math.min(this.o.maxTtlMs, Math.max(this.o.minTtlMs, ttl));
  }
}
