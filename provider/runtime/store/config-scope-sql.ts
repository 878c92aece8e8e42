/**
 * A discovery_config's status per scope (ConfigScopeStore), written once for both backends as scope-lease-sql.ts
 * is, and the status a user reads derived from it: the sum over the config's scopes whose rows are still fresh, so
 * replicas that split the config's scopes each add what they listed, and a scope whose replica is gone stops
 * counting once its row is no longer fresh.
 */
import { iso, type RunStatement } from "./scope-lease-sql";
import type { ConfigScopeRef, ConfigScopeStatus, ConfigScopeStore, DiscoveryStatus } from "./types";

/** Runs statements in one transaction: all are written or none. */
export type RunBatch = (statements: { sql: string; params: string[] }[]) => Promise<void>;

/** Longest error_message a status shows. */
export const MAX_STATUS_ERROR = 2000;

/** The cloud of a row that says a replica's whole pass over the config failed (its account is the replica). */
export const FAILED_PASS = "*";

const KEY = "config = $1 AND cloud = $2 AND account = $3 AND region = $4";

const UPSERT = `
  INSERT INTO discovery_scope_status
    (config, cloud, account, region, found, enrolled, failed, error, holder, position, last_sync, fresh_until)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
  ON CONFLICT (config, cloud, account, region) DO UPDATE SET found = excluded.found, enrolled = excluded.enrolled,
    failed = excluded.failed, error = excluded.error, holder = excluded.holder, position = excluded.position,
    last_sync = excluded.last_sync, fresh_until = excluded.fresh_until`;

const keyOf = (s: ConfigScopeRef) => `${s.cloud}/${s.account}/${s.region}`;

function toConfigScope(r: Record<string, unknown>): ConfigScopeStatus {
  return {
    config: String(r.config),
    cloud: String(r.cloud),
    account: String(r.account),
    region: String(r.region),
    found: Number(r.found),
    enrolled: Number(r.enrolled),
    failed: Number(r.failed),
    error: String(r.error),
    holder: String(r.holder),
    position: Number(r.position),
    lastSync: iso(r.last_sync),
    freshUntil: iso(r.fresh_until),
  };
}

/** The ConfigScopeStore methods over one backend's statement runner and transaction. */
export function configScopeMethods(run: RunStatement, batch: RunBatch): ConfigScopeStore {
  const list = async (config?: string) => {
    const order = "ORDER BY config, cloud, account, region";
    const { rows } =
      config === undefined
        ? await run(`SELECT * FROM discovery_scope_status ${order}`, [])
        : await run(`SELECT * FROM discovery_scope_status WHERE config = $1 ${order}`, [config]);
    return rows.map(toConfigScope);
  };
  return {
    async putConfigScopes(config, rows, prune) {
      const statements = rows.map((r) => ({
        sql: UPSERT,
        params: [config, r.cloud, r.account, r.region, ...[r.found, r.enrolled, r.failed].map(String)].concat([
          r.error,
          r.holder,
          String(r.position),
          iso(r.lastSync),
          iso(r.freshUntil),
        ]),
      }));
      if (prune) {
        // Read before the transaction; each delete re-checks its own condition, so a row another replica wrote
        // meanwhile (fresh, not ours) is kept.
        const reported = new Set([...rows, ...prune.reported].map(keyOf));
        for (const r of await list(config))
          if (!reported.has(keyOf(r)))
            statements.push({
              sql: `DELETE FROM discovery_scope_status WHERE ${KEY} AND (holder = $5 OR fresh_until <= $6)`,
              params: [config, r.cloud, r.account, r.region, prune.holder, iso(prune.now)],
            });
      }
      // A config deleted while its pass ran keeps no rows (its delete removed those written before).
      statements.push({
        sql: `DELETE FROM discovery_scope_status WHERE config = $1
              AND NOT EXISTS (SELECT 1 FROM resources WHERE kind = 'discovery_config' AND key = $1)`,
        params: [config],
      });
      await batch(statements);
    },
    async extendConfigScopes(config, holder, freshUntil) {
      await run(
        "UPDATE discovery_scope_status SET fresh_until = $3 WHERE config = $1 AND holder = $2 AND fresh_until < $3",
        [config, holder, iso(freshUntil)],
      );
    },
    listConfigScopes: list,
  };
}

/**
 * A config's status over its scope rows at `now`: the sums of the fresh rows, state error when one of them has an
 * error (error_message lists them), the newest last sync, and the replicas that wrote them. `base` (the status last
 * written) gives the state while a pass runs ("syncing"), and the last sync and writer when no row is fresh. A
 * replica whose whole pass failed shows that failure instead of the scope errors of its pass before.
 */
export function statusOverScopes(base: DiscoveryStatus, rows: ConfigScopeStatus[], now: Date): DiscoveryStatus {
  const fresh = rows.filter((r) => Date.parse(r.freshUntil) > now.getTime());
  const failedPass = new Set(fresh.filter((r) => r.cloud === FAILED_PASS).map((r) => r.holder));
  const errors = fresh
    .filter((r) => r.error !== "" && (r.cloud === FAILED_PASS || !failedPass.has(r.holder)))
    .sort((a, b) => a.position - b.position || (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  let message = errors.map((r) => r.error).join("; ");
  if (message.length > MAX_STATUS_ERROR) message = message.slice(0, MAX_STATUS_ERROR - 1) + "…";
  const sum = (f: "found" | "enrolled" | "failed") => fresh.reduce((n, r) => n + r[f], 0);
  const newest = fresh.map((r) => r.lastSync).sort();
  const holders = [...new Set(fresh.map((r) => r.holder))].sort();
  return {
    state: base.state === "syncing" ? "syncing" : errors.length > 0 ? "error" : "running",
    error_message: message,
    ...(newest.length > 0
      ? { last_sync_time: newest[newest.length - 1] }
      : base.last_sync_time !== undefined && { last_sync_time: base.last_sync_time }),
    found: sum("found"),
    enrolled: sum("enrolled"),
    failed: sum("failed"),
    ...(holders.length > 0
      ? { discovered_by: holders.join(", ") }
      : base.discovered_by !== undefined && { discovered_by: base.discovered_by }),
  };
}

/** The stored statuses with those of configs that have scope rows derived from them (see statusOverScopes). */
export function statusesOverScopes(
  stored: Map<string, DiscoveryStatus>,
  rows: ConfigScopeStatus[],
  now: Date,
): Map<string, DiscoveryStatus> {
  const byConfig = new Map<string, ConfigScopeStatus[]>();
  for (const r of rows) byConfig.set(r.config, [...(byConfig.get(r.config) ?? []), r]);
  const out = new Map<string, DiscoveryStatus>();
  for (const [name, status] of stored) {
    const scopes = byConfig.get(name);
    out.set(name, scopes ? statusOverScopes(status, scopes, now) : status);
  }
  return out;
}
