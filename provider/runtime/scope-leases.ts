/**
 * Replicas share scans. The replicas of one discovery group that share a store split the group's scopes (AWS account
 * × region, GCP project × zone, Azure subscription) with expiring leases, so each scope is listed by one replica per
 * poll interval instead of by every replica (Teleport #40546), and a dead replica's scopes pass to another.
 *
 * A round is one run of the loop over all its matchers (several passes: static matchers, then each config):
 * - it starts with a heartbeat (this replica is alive for one lease TTL) and a look at the group's leases and the
 *   replicas alive now;
 * - each scope is asked before its listing calls. Granted (the fetcher lists it): a scope this replica holds (a
 *   renewal: sticky), or a free or expired one while this replica holds fewer than its share, ceil(scopes ÷ live
 *   replicas), where scopes counts every scope leased in the group within the last TTL or asked this round, and
 *   what it holds counts the scopes it held at the round's start, asked yet or not. Refused
 *   (reported, not listed): a scope another replica holds, or a free one once this replica has its share;
 * - it ends by renewing what it was granted, another heartbeat, and by releasing, at once, leases beyond its share
 *   (a new replica joined: the extras go to it on its next pass) and leases no pass asked for this round.
 *
 * The TTL is two poll intervals: the holder renews at every round's end and again when its next round asks, one
 * poll interval later, so one late or slow round does not lose a lease. A replica killed without a clean stop
 * loses its scopes within a TTL; another replica's first round after that takes them, so takeover takes at most
 * three poll intervals (plus a pass). A replica that stops cleanly releases its leases and heartbeat at once.
 * Lease grants are single statements in the store (ScopeLeaseStore), so two replicas never both list a scope under
 * a lease; a scope may be listed twice only in the interval a lease is handed over. When the store cannot be asked,
 * the scope is listed anyway: a duplicate listing is harmless (instance claims still stop duplicate installs),
 * a skipped one is not.
 */
import type { Logger } from "pino";
import type { ScopeAsk } from "../enroll/clouds";
import type { ScopeHeld } from "../enroll/types";
import type { ScopeKey, ScopeLease, ScopeLeaseStore } from "./store/types";

/** A lease's time to live for a loop polling every `pollMs`: two poll intervals (see the module comment). */
export const leaseTtlMs = (pollMs: number): number => 2 * pollMs;

/** What a keeper needs. */
export interface ScopeLeaseKeeperOptions {
  store: ScopeLeaseStore;
  /** The discovery group whose scopes are shared. */
  group: string;
  /** This replica's runtime id: the holder written on its leases. */
  holder: string;
  ttlMs: number;
  logger?: Logger;
  now?: () => Date;
}

/** What one round ended with: the scopes this replica holds now, and the leases it gave up. */
export interface LeaseRoundResult {
  held: ScopeKey[];
  released: ScopeKey[];
  /** Replicas of the group alive when the round began (this one included). */
  replicas: number;
}

/** The state of one round. */
interface Round {
  now: Date;
  live: number;
  /** Every lease of the group at the round's start, by scope key. */
  before: Map<string, ScopeLease>;
  /** Scopes to share: leased within the last TTL, or asked this round. */
  known: Set<string>;
  /** Scopes this replica held (unexpired) at the start. */
  mine: Set<string>;
  asked: Map<string, Promise<ScopeHeld | undefined>>;
  granted: Map<string, ScopeKey>;
  /** New scopes are asked one after another, each after this. */
  queue: Promise<unknown>;
}

const keyOf = (s: { cloud: string; account: string; region: string }) => `${s.cloud}/${s.account}/${s.region}`;

/** One replica's side of the scope leases of its discovery group (see the module comment). */
export class ScopeLeaseKeeper {
  private round?: Round;
  private readonly now: () => Date;

  constructor(private readonly o: ScopeLeaseKeeperOptions) {
    this.now = o.now ?? (() => new Date());
  }

  private later(from: Date): Date {
    return new Date(from.getTime() + this.o.ttlMs);
  }

  private heartbeat(at: Date): Promise<void> {
    const h = { group: this.o.group, runtimeId: this.o.holder };
    return this.o.store.putReplicaHeartbeat({
      ...h,
      seenAt: at.toISOString(),
      expiresAt: this.later(at).toISOString(),
    });
  }

  /** This replica's share of the scopes known so far. */
  private share(r: Round): number {
    return Math.ceil(r.known.size / r.live);
  }

  /** Starts a round: a heartbeat, then the group's leases and live replicas. A store failure leaves no round. */
  async beginRound(): Promise<void> {
    const now = this.now();
    this.round = undefined;
    try {
      await this.heartbeat(now);
      const [replicas, leases] = await Promise.all([
        this.o.store.listReplicas(this.o.group, now),
        this.o.store.listScopeLeases(this.o.group),
      ]);
      const recent = now.getTime() - this.o.ttlMs;
      const before = new Map(leases.map((l) => [keyOf(l), l]));
      this.round = {
        now,
        live: Math.max(1, replicas.length),
        before,
        known: new Set(leases.filter((l) => Date.parse(l.expiresAt) > recent).map(keyOf)),
        mine: new Set(
          leases.filter((l) => l.holder === this.o.holder && Date.parse(l.expiresAt) > now.getTime()).map(keyOf),
        ),
        asked: new Map(),
        granted: new Map(),
        queue: Promise.resolve(),
      };
    } catch (err) {
      this.o.logger?.warn({ err }, "could not read the scope leases: this round lists every scope");
    }
  }

  /**
   * Whether this replica lists `scope` now: undefined (listed, under its lease) or why not. Asked once per scope
   * per round; every later ask in the round (another matcher, another config) gets the same answer.
   */
  acquire(scope: ScopeAsk): Promise<ScopeHeld | undefined> {
    const r = this.round;
    if (!r) return Promise.resolve(undefined);
    const k = keyOf(scope);
    let answer = r.asked.get(k);
    if (!answer) {
      answer = this.decide(r, { ...scope, group: this.o.group }, k);
      r.asked.set(k, answer);
    }
    return answer;
  }

  private decide(r: Round, scope: ScopeKey, k: string): Promise<ScopeHeld | undefined> {
    r.known.add(k);
    // A scope held since the last round is renewed at once (sticky); new ones are asked one at a time, so each sees
    // the grants before it and parallel asks cannot overshoot the share, nor a refusal in flight hold one back.
    if (r.mine.has(k)) return this.take(r, scope, k);
    const turn = r.queue.then(() => this.takeWithinShare(r, scope, k));
    r.queue = turn.catch(() => undefined);
    return turn;
  }

  private takeWithinShare(r: Round, scope: ScopeKey, k: string): Promise<ScopeHeld | undefined> {
    // Scopes held since the last round count first, asked or not yet: a scope given up last round for balance is
    // not taken back before the replica it was meant for has had its turn.
    const reserved = [...r.mine].filter((m) => !r.granted.has(m)).length;
    const share = this.share(r);
    if (r.granted.size + reserved < share) return this.take(r, scope, k);
    const l = r.before.get(k);
    if (l && l.holder !== this.o.holder && Date.parse(l.expiresAt) > r.now.getTime())
      return Promise.resolve({
        holder: l.holder,
        until: l.expiresAt,
        reason: `held by replica ${l.holder} until ${l.expiresAt}`,
      });
    return Promise.resolve({
      reason:
        `left to another replica: this one has its share, ${share} of the group's ${r.known.size} scopes ` +
        `among ${r.live} replicas`,
    });
  }

  /** One acquire statement: granted, or who holds the scope. A store failure lists the scope anyway. */
  private async take(r: Round, scope: ScopeKey, k: string): Promise<ScopeHeld | undefined> {
    try {
      const now = this.now();
      const lease = await this.o.store.acquireScopeLease(scope, this.o.holder, now, this.later(now));
      if (lease.holder !== this.o.holder) {
        // Lost (it expired and was taken): no longer counted as this replica's.
        r.mine.delete(k);
        return {
          holder: lease.holder,
          until: lease.expiresAt,
          reason: `held by replica ${lease.holder} until ${lease.expiresAt}`,
        };
      }
      r.granted.set(k, scope);
      const prev = r.before.get(k);
      if (prev && prev.holder !== this.o.holder)
        this.o.logger?.info(
          { scope: k, from: prev.holder, expired: prev.expiresAt },
          `took over scope ${k} from replica ${prev.holder}, whose lease had expired or was given up`,
        );
      return undefined;
    } catch (err) {
      this.o.logger?.warn({ err, scope: k }, "could not take the scope's lease: listing it anyway");
      return undefined;
    }
  }

  /**
   * Ends the round: renews the leases granted in it, up to this replica's share (scopes in key order), releases the
   * rest and those no pass asked for, and beats once more. Undefined when the round never began.
   */
  async endRound(): Promise<LeaseRoundResult | undefined> {
    const r = this.round;
    this.round = undefined;
    if (!r) return undefined;
    const now = this.now();
    const keys = [...r.granted.keys()].sort();
    const keep = keys.slice(0, Math.max(this.share(r), 1)).map((k) => r.granted.get(k)!);
    const kept = new Set(keep.map(keyOf));
    const release = [
      ...keys.filter((k) => !kept.has(k)).map((k) => r.granted.get(k)!),
      ...[...r.mine].filter((k) => !r.granted.has(k)).map((k) => r.before.get(k)!),
    ];
    try {
      await this.o.store.renewScopeLeases(this.o.holder, keep, this.later(now));
      if (release.length > 0) {
        await this.o.store.releaseScopeLeases(this.o.holder, release, now);
        this.o.logger?.info(
          { released: release.map(keyOf), held: keep.length, replicas: r.live },
          `released ${release.length} scope lease(s) for other replicas (this one keeps ${keep.length})`,
        );
      }
      await this.heartbeat(now);
      await this.o.store.pruneScopeLeases(this.o.group, new Date(now.getTime() - this.o.ttlMs));
    } catch (err) {
      this.o.logger?.warn({ err }, "could not renew the scope leases; they expire unless the next round renews them");
    }
    return { held: keep, released: release, replicas: r.live };
  }

  /** A clean stop: gives up every lease this replica holds and its heartbeat, so the others take over at once. */
  async leave(): Promise<void> {
    const now = this.now();
    const mine = (await this.o.store.listScopeLeases(this.o.group)).filter((l) => l.holder === this.o.holder);
    await this.o.store.releaseScopeLeases(this.o.holder, mine, now);
    await this.o.store.removeReplica(this.o.group, this.o.holder);
  }
}
