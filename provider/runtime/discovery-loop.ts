/**
 * The runtime's discovery loop, a control loop in Teleport's manner: it scans the static matchers of its
 * `discovery_service` plus every stored discovery_config of its `discovery_group`, once per poll_interval, and at
 * once (after a short debounce) when one of those configs is applied, changed, moved or deleted. Each scanned
 * config gets a status written beside it, over the scopes of every replica of the group (see config-status.ts).
 *
 * Changes are noticed by polling a watermark of the discovery_config table (count, newest write, revision sum) every
 * second, on both backends: one indexed aggregate query, so every replica sharing a PostgreSQL database sees another
 * replica's apply within about a second without LISTEN/NOTIFY's extra connection per replica, and SQLite needs
 * nothing different.
 */
import { randomBytes } from "crypto";
import type { Logger } from "pino";
import { canonicalJson, type Cloud, CLOUDS, DiscoveryConfig, DiscoveryServiceSection, parseDuration } from "../model";
import { storeBackend } from "../enroll/backend";
import type { CloudEnrollment } from "../enroll/clouds";
import { cloudEnrollment } from "../clouds";
import { type CloudLookup, type InstanceEvent, targetedClouds } from "../enroll/events";
import { PassResult, runEnrollmentPass } from "../enroll/pass";
import type { RuntimeEndpoint } from "../enroll/types";
import type { DiscoveryStatus, Store } from "./store/types";
import { summarizePass } from "./pass-summary";
import { leaseTtlMs, ScopeLeaseKeeper } from "./scope-leases";
import { configScopesOf, failedPassRow, scopeStatusTtlMs } from "./config-status";
import { statusOverScopes } from "./store/config-scope-sql";

/** What the loop needs; the clouds and timings are injectable so tests run it in-process with fake clouds. */
export interface DiscoveryLoopOptions {
  section: DiscoveryServiceSection;
  store: Store;
  endpoint: RuntimeEndpoint;
  logger: Logger;
  /** The runtime's id, recorded on the instances it claims and written into nodes' `discovery/discovered-by`. */
  runtimeId: string;
  /** The clouds' fetchers and installers; default the registered ones. */
  clouds?: (name: string) => CloudEnrollment | undefined;
  /** How often the discovery_config watermark is read; default 1 s. */
  watchIntervalMs?: number;
  /** Quiet time after a change before the pass starts, so one `apply` of several documents makes one pass. */
  debounceMs?: number;
  /** How long an installed instance may take to join; default 2 minutes. */
  joinTimeoutMs?: number;
  /** Told about every pass (the runtime's /metrics). */
  metrics?: PassObserver;
}

/** What is told about each pass: its result (undefined: it threw) and how long it took. */
export interface PassObserver {
  passFinished(result: PassResult | undefined, seconds: number): void;
  /** The scope leases this replica holds after a round, by cloud (see scope-leases.ts). */
  scopeLeasesHeld?(byCloud: Record<string, number>): void;
}

type Spec = DiscoveryConfig["spec"];

/** The stored configs a runtime scans: those whose spec names its group (only when it named one). */
async function configsOfGroup(store: Store, section: DiscoveryServiceSection): Promise<Map<string, Spec>> {
  const out = new Map<string, Spec>();
  if (!section.dynamic) return out;
  for (const r of await store.listResources("discovery_config")) {
    const spec = r.doc.spec as Spec;
    if (spec.discovery_group === section.discovery_group) out.set(r.key, spec);
  }
  return out;
}

/** The runtime's discovery loop (see the module comment). */
export class DiscoveryLoop {
  private configs = new Map<string, { spec: Spec; canon: string }>();
  private watermark?: string;
  private rotationMark?: string;
  private pollTimer?: NodeJS.Timeout;
  private watchTimer?: NodeJS.Timeout;
  private debounceTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private rerun = false;
  private retryFailedNext = false;
  private stopped = false;
  private readonly pollMs: number;
  /** How long the scope rows this loop writes for a config's status count (see config-status.ts). */
  private readonly freshMs: number;
  /** With a discovery_group: the leases through which the group's replicas share its scopes. */
  readonly leases?: ScopeLeaseKeeper;
  /** This start of the runtime: its claims carry it, so the next start knows they are dead (see rules.ts). */
  private readonly boot = randomBytes(6).toString("hex");
  /** Passes finished since start (for tests and metrics). */
  passes = 0;

  /** A loop over `o.section` and the stored configs of its group. */
  constructor(private readonly o: DiscoveryLoopOptions) {
    this.pollMs = parseDuration(o.section.poll_interval) ?? 300_000;
    this.freshMs = scopeStatusTtlMs(this.pollMs);
    // Only a named group says that replicas are one service with the same matchers, whose scans may be split.
    if (o.section.dynamic)
      this.leases = new ScopeLeaseKeeper({
        store: o.store,
        group: o.section.discovery_group,
        holder: o.runtimeId,
        ttlMs: leaseTtlMs(this.pollMs),
        logger: o.logger,
      });
  }

  /** The names of the stored configs this loop currently scans. */
  scanned(): string[] {
    return [...this.configs.keys()];
  }

  /** Starts the loop: loads the group's configs, runs a first pass at once, then watches and polls. */
  start(): void {
    void (async () => {
      await this.watch().catch((err) => this.o.logger.error({ err }, "could not read discovery configs"));
      void this.runNow();
      this.scheduleWatch();
    })();
  }

  /** Whether a pass is in progress (a pass asked for now runs right after it). */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /**
   * Runs a pass now, or, when one is in progress, one more right after it; resolves when the pass in progress (or
   * the new one) ends. `retryFailed`: that pass installs on failed instances without waiting out their backoff.
   */
  runNow(opts: { retryFailed?: boolean } = {}): Promise<void> {
    if (opts.retryFailed) this.retryFailedNext = true;
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const retryFailed = this.retryFailedNext;
    this.retryFailedNext = false;
    this.running = this.passOverAll(retryFailed)
      .catch((err) => this.o.logger.error({ err }, "discovery pass failed"))
      .finally(() => {
        this.running = undefined;
        this.passes++;
        if (this.stopped) return;
        if (this.rerun) {
          this.rerun = false;
          void this.runNow();
        } else this.pollTimer = setTimeout(() => void this.runNow(), this.pollMs);
      });
    return this.running;
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.pollTimer, this.watchTimer, this.debounceTimer]) if (t) clearTimeout(t);
    await this.running;
    await this.leases?.leave().catch((err) => this.o.logger.warn({ err }, "could not release the scope leases"));
  }

  private scheduleWatch(): void {
    if (this.stopped) return;
    this.watchTimer = setTimeout(() => {
      void Promise.all([this.watch(), this.watchRotation()])
        .then(([configs, rotation]) => (configs || rotation) && this.changed())
        .catch((err) => this.o.logger.warn({ err }, "could not read discovery configs; retrying"))
        .finally(() => this.scheduleWatch());
    }, this.o.watchIntervalMs ?? 1000);
  }

  /** Reloads the group's configs when the watermark moved; true when the set of specs differs from the last one. */
  private async watch(): Promise<boolean> {
    if (!this.o.section.dynamic) return false;
    const mark = await this.o.store.resourceWatermark("discovery_config");
    if (mark === this.watermark) return false;
    this.watermark = mark;
    const next = new Map<string, { spec: Spec; canon: string }>();
    for (const [name, spec] of await configsOfGroup(this.o.store, this.o.section))
      next.set(name, { spec, canon: canonicalJson(spec) });
    // The spec is compared, not the revision: re-applying the same document changes nothing.
    const same = next.size === this.configs.size && [...next].every(([n, c]) => this.configs.get(n)?.canon === c.canon);
    if (same) return false;
    this.o.logger.info({ scanned: [...next.keys()] }, "discovery configs of this group changed");
    this.configs = next;
    return true;
  }

  /**
   * True when a CA rotation has started or completed since the last look (on any replica): the pass that follows
   * re-runs the installer on every enrolled node whose credentials no longer match.
   */
  private async watchRotation(): Promise<boolean> {
    const [host, user] = await Promise.all([
      this.o.store.getCertAuthority("host"),
      this.o.store.getCertAuthority("user"),
    ]);
    const open = !!(host?.previous.length || user?.previous.length);
    const mark = JSON.stringify([host?.active.publicKey, user?.active.publicKey, open]);
    const before = this.rotationMark;
    this.rotationMark = mark;
    if (before === undefined || before === mark) return false;
    this.o.logger.info(
      open
        ? "a CA rotation started: re-running installers on nodes that hold the old key"
        : "a CA rotation completed: re-running installers on nodes that still trust the old key",
    );
    return true;
  }

  /** A change: a pass after the debounce, which also restarts the poll timer. */
  private changed(): void {
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.runNow(), this.o.debounceMs ?? 500);
  }

  /**
   * A targeted pass over just these instances (state-change events named them), at once and beside any pass in
   * progress (claims keep one install per instance): the static matchers and each scanned config look at them by
   * their own rules, so an instance none selects is left alone. It writes no status, records no scope results and
   * checks no stale nodes; the poll does those. `retryFailed`: a look again at instances that were not ready.
   */
  enrollInstances(instances: InstanceEvent[], opts: { retryFailed?: boolean } = {}): Promise<PassResult[]> {
    const clouds = targetedClouds(instances, this.o.clouds ?? cloudEnrollment);
    const s = this.o.section;
    const sets: [Pick<DiscoveryServiceSection, Cloud>, string | undefined][] = [
      ...(CLOUDS.some((c) => s[c].length > 0) ? [[s, undefined] as [typeof s, undefined]] : []),
      ...[...this.configs].map(([name, { spec }]): [Spec, string] => [spec, name]),
    ];
    return Promise.all(sets.map(([m, name]) => this.pass(m, opts.retryFailed ?? false, name, clouds)));
  }

  /** The clouds' fetchers and installers this loop uses (tests pass fakes). */
  get clouds(): CloudLookup {
    return this.o.clouds ?? cloudEnrollment;
  }

  /**
   * One pass over `matchers` (the static ones, or the config `config`'s): one log line, and its metrics. With
   * `targeted` (clouds narrowed to some instances) it is an event's pass: no scope results, no stale-node check.
   */
  private async pass(
    matchers: Pick<DiscoveryServiceSection, Cloud>,
    retryFailed: boolean,
    config?: string,
    targeted?: CloudLookup,
  ): Promise<PassResult> {
    const now = () => new Date();
    const started = performance.now();
    let result: PassResult;
    try {
      result = await runEnrollmentPass({
        matchers,
        backend: storeBackend(this.o.store, now),
        runtime: this.o.endpoint,
        clouds: targeted ?? this.o.clouds,
        discoveredBy: this.o.runtimeId,
        boot: this.boot,
        staleMs: parseDuration(this.o.section.claim_timeout),
        joinTimeoutMs: this.o.joinTimeoutMs,
        staleNodeGraceMs: targeted ? undefined : parseDuration(this.o.section.stale_node_grace),
        retryFailed,
        now,
        onProgress: (e) => this.o.logger.debug({ progress: e, config }, "discovery progress"),
        ...(this.leases && { acquireScope: (s) => this.leases!.acquire(s) }),
      });
      // A targeted pass (events) and a scope left to another replica say nothing of a scope's errors.
      if (!targeted)
        await this.o.store.recordScopeResults(
          result.scopes.filter((s) => !s.held),
          now(),
        );
    } catch (err) {
      this.o.metrics?.passFinished(undefined, (performance.now() - started) / 1000);
      throw err;
    }
    const ms = performance.now() - started;
    this.o.metrics?.passFinished(result, ms / 1000);
    const { fields, message } = summarizePass(result, ms);
    // Static matchers have no config name; a config's pass carries it.
    const which = {
      ...(config !== undefined && { config }),
      ...(retryFailed && { retry_failed: true }),
      ...(targeted && { event: true }),
    };
    this.o.logger.info({ ...which, ...fields }, message);
    return result;
  }

  /** One round of passes, within one round of the scope leases: what it lists, it lists under a lease. */
  private async passOverAll(retryFailed: boolean): Promise<void> {
    await this.leases?.beginRound();
    try {
      await this.passesOfRound(retryFailed);
    } finally {
      const round = await this.leases?.endRound();
      if (round) {
        const byCloud = Object.fromEntries(CLOUDS.map((c) => [c, round.held.filter((s) => s.cloud === c).length]));
        this.o.metrics?.scopeLeasesHeld?.(byCloud);
      }
    }
  }

  /** One pass over the static matchers, then one per config (so each gets its own status). */
  private async passesOfRound(retryFailed: boolean): Promise<void> {
    const s = this.o.section;
    if (CLOUDS.some((c) => s[c].length > 0)) await this.pass(s, retryFailed);
    const statuses = await this.o.store.listDiscoveryStatus();
    for (const [name, { spec }] of [...this.configs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (this.stopped) return;
      // A config deleted or moved away since the pass began is not scanned (nor given a status) any more.
      if (this.configs.get(name)?.spec !== spec) continue;
      await this.scanConfig(name, spec, statuses.get(name), retryFailed);
    }
  }

  /**
   * One config's pass and its status: "syncing" while it runs, then the sum over the fresh scope rows of every
   * replica, this pass's rows included (see config-status.ts).
   */
  private async scanConfig(name: string, spec: Spec, before: DiscoveryStatus | undefined, retryFailed: boolean) {
    const id = this.o.runtimeId;
    const stamp = (at: Date) => ({ config: name, holder: id, at, freshUntil: new Date(at.getTime() + this.freshMs) });
    const put = (st: DiscoveryStatus) => this.o.store.putDiscoveryStatus(name, st, new Date());
    const putOverScopes = async (at: Date) => {
      const base = { state: "running" as const, error_message: "", last_sync_time: at.toISOString() };
      const rows = await this.o.store.listConfigScopes(name);
      await put(statusOverScopes({ ...base, found: 0, enrolled: 0, failed: 0, discovered_by: id }, rows, at));
    };
    // This replica's rows stay fresh while it scans again, however long the pass takes.
    await this.o.store.extendConfigScopes(name, id, stamp(new Date()).freshUntil);
    await put({
      ...(before ?? { error_message: "", found: 0, enrolled: 0, failed: 0 }),
      state: "syncing",
      discovered_by: id,
    });
    try {
      const result = await this.pass(spec, retryFailed, name);
      const at = new Date();
      const { rows, reported } = configScopesOf(result, stamp(at));
      await this.o.store.putConfigScopes(name, rows, { holder: id, reported, now: at });
      await putOverScopes(at);
    } catch (err) {
      this.o.logger.error({ err, config: name }, "discovery pass over a config failed");
      // Its rows of the pass before stay (counted while fresh); the failure shows instead of their errors.
      const at = new Date();
      await this.o.store.putConfigScopes(name, [failedPassRow(err, stamp(at))]);
      await putOverScopes(at);
    }
  }
}
